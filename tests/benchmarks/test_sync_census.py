"""``sync_census`` counts the operators that make the host read device data, forward and backward."""
from __future__ import annotations

import torch

from benchmarks.experiments.sync_census import census


class _ReadsTwice(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(4, 4)

    def forward(self, x):
        y = self.lin(x)
        if y.abs().max().item() > 1e9:  # a host read in the forward
            y = y * 0
        keep = y.sum(0).nonzero()  # a data-dependent shape
        return y[:, keep.flatten()]


def test_counts_host_reads_and_finds_none_in_a_plain_step():
    hits = census(_ReadsTwice(), torch.randn(3, 4))
    ops = {op for op, _ in hits}
    assert {"_local_scalar_dense", "nonzero"} <= ops
    assert not census(torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.GELU()), torch.randn(3, 4))


def test_the_classification_models_train_without_host_reads():
    """A host read in a layer would stall the GPU every step (issue #21's idle time); none today."""
    import timm

    import vision_ssm  # noqa: F401

    for name in ("test_vmamba", "test_mambavision"):
        model = timm.create_model(name, backend="chunked")
        assert not census(model, torch.randn(2, 3, 64, 64)), name
