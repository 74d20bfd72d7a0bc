"""model_complexity: parameters and MACs counted on the meta device (the model zoo's numbers)."""
import pytest
import timm
import torch
from torch import nn

from vision_ssm.layers import SS2D
from vision_ssm.models.complexity import model_complexity, scan_macs


def test_params_equal_the_real_model():
    real = timm.create_model("test_vmamba")
    c = model_complexity("test_vmamba")
    assert c.params == sum(p.numel() for p in real.parameters())
    assert c.input_size == tuple(real.pretrained_cfg["input_size"])
    assert c.macs > c.scan_macs > 0


def test_dense_macs_follow_pytorch_formulas():
    with torch.device("meta"):
        lin = nn.Linear(10, 20)
    c = model_complexity(lin, input_size=(10,), inputs=[torch.empty(3, 10, device="meta")])
    assert (c.macs, c.scan_macs, c.params) == (3 * 10 * 20, 0, 220)


@pytest.mark.parametrize("K", [1, 2, 4, 8])
def test_scan_macs_are_the_mamba_formula_per_direction(K):
    with torch.device("meta"):
        block = SS2D(d_model=32, d_state=4, ssm_ratio=2.0, scan="hilbert", directions=K)
    x = torch.empty(1, 8, 8, 32, device="meta")  # (B, H, W, C)
    c = model_complexity(block, input_size=(32, 8, 8), inputs=[x])
    d_inner = 64
    # one routed scan over K*D channels of length H*W, with the D skip (SS2D gates outside the scan)
    assert c.scan_macs == scan_macs(1, K * d_inner, 64, 4, has_D=True, has_z=False)
    assert scan_macs(2, 3, 5, 7, True, True) == 9 * 2 * 5 * 3 * 7 + 2 * 2 * 3 * 5


def test_counts_scale_with_input_area():
    small = model_complexity("test_vmamba", input_size=(3, 64, 64))
    large = model_complexity("test_vmamba", input_size=(3, 128, 128))
    assert small.params == large.params
    assert 3.5 < large.macs / small.macs < 4.5


def test_two_input_models_get_both_inputs():
    c = model_complexity("test_mambaalign")  # rgb + aux (aux_chans channels)
    assert c.macs > 0


def test_real_parameters_are_refused():
    with pytest.raises(ValueError, match="meta"):
        model_complexity(nn.Linear(2, 2), input_size=(2,))
