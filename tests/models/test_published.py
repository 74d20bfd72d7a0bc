"""The published-numbers table behind the model zoo refers only to registered models."""
import timm

from vision_ssm.models.published import PUBLISHED_RESULTS, published_result


def test_every_entry_is_a_registered_model():
    registered = set(timm.list_models())
    assert set(PUBLISHED_RESULTS) <= registered, set(PUBLISHED_RESULTS) - registered


def test_lookup():
    assert published_result("vmamba_tiny_s1l8.in1k").value == 82.6
    assert published_result("mambaad_resnet34").metric.startswith("MVTec-AD")
    assert published_result("fusion_mamba_cs3darknet_s") is None
    assert all(0 < r.value < 100 for r in PUBLISHED_RESULTS.values())
