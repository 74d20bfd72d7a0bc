"""Which operators of a training step would make the host wait for the device (runs on any device, CPU too).

``python -m benchmarks.experiments.sync_census MODEL [BACKEND] [SIZE]``, e.g.
``python -m benchmarks.experiments.sync_census mambavision_tiny chunked 64``.

On CUDA an operator whose result the host needs (``Tensor.item``, ``nonzero``, ``bool(t)``, ``torch.equal``,
``masked_select``, ``unique``, …) blocks the launching thread until the GPU has caught up, and the GPU then runs
dry while the host queues the next kernels. This census records every such ATen call in one training step
(forward and backward, batch 2) with a ``TorchDispatchMode``, with the library or timm line that made it, so it
finds them without a GPU. It sees the operators under the library's layers, not inside a backend's kernels (use
``chunked`` or ``reference`` for the scan; ``host_pair`` checks the Triton path on a GPU with
``torch.cuda.set_sync_debug_mode``).
"""
from __future__ import annotations

import collections
import os
import sys
import traceback

import torch
from torch.utils._python_dispatch import TorchDispatchMode

# ATen operators whose result (or output size) the host must read from the device
HOST_READS = frozenset({
    "_local_scalar_dense", "nonzero", "is_nonzero", "equal", "masked_select", "unique", "_unique2",
    "unique_consecutive", "unique_dim", "allclose", "repeat_interleave", "bincount", "histc",
})


class SyncCensus(TorchDispatchMode):
    """Counts :data:`HOST_READS` calls by ``(operator, file:line of the innermost vision_ssm / timm frame)``."""

    def __init__(self) -> None:
        super().__init__()
        self.hits: collections.Counter = collections.Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.overloadpacket.__name__
        if name in HOST_READS:
            frames = [f for f in traceback.extract_stack()[:-1] if "vision_ssm" in f.filename or "timm" in f.filename]
            where = f"{os.path.basename(frames[-1].filename)}:{frames[-1].lineno}" if frames else "?"
            self.hits[(name, where)] += 1
        return func(*args, **(kwargs or {}))


def census(model: torch.nn.Module, x: torch.Tensor) -> collections.Counter:
    """Host reads in one training step (``model(x)`` then ``backward`` of the summed output)."""
    model.train()
    with SyncCensus() as spy:
        model(x).float().sum().backward()
    return spy.hits


def main(argv: list[str]) -> None:
    import timm

    import vision_ssm  # noqa: F401  (registers the models)

    name = argv[0]
    backend = argv[1] if len(argv) > 1 else "chunked"
    size = int(argv[2]) if len(argv) > 2 else 64
    model = timm.create_model(name, backend=backend)
    hits = census(model, torch.randn(2, 3, size, size))
    print(f"{name} [{backend}], {size} px, one training step: {sum(hits.values())} host reads")
    for (op, where), n in hits.most_common():
        print(f"  {n:4d}  {op:24s} {where}")


if __name__ == "__main__":
    main(sys.argv[1:])
