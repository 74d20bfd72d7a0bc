"""Mixed-precision training at large learning rates stays finite (100 steps here; the 1,000-step run is
``python -m benchmarks.numerics_stress``)."""
import pytest
import torch

from benchmarks.numerics_stress import stress_train


@pytest.mark.parametrize("name", ["test_vmamba", "test_mambavision"])
def test_bf16_autocast_training_at_a_large_learning_rate_stays_finite(name):
    r = stress_train(name, steps=100, lr=0.02, device="cpu", dtype=torch.bfloat16)
    assert r.first_nonfinite is None, r
    assert r.steps == 100 and r.loss_last < r.loss_first, r  # it trained, not merely survived


@pytest.mark.gpu
@pytest.mark.parametrize("name", ["test_vmamba", "test_mambavision"])
def test_fp16_autocast_with_grad_scaler_stays_finite(name):
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    r = stress_train(name, steps=1000, lr=0.02, device="cuda", dtype=torch.float16)
    assert r.first_nonfinite is None, r
    assert r.skipped_steps < 50 and r.loss_last < r.loss_first, r
