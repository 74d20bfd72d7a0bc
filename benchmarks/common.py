"""What the benchmark suites share: the run header, timing, statistics, JSON output, CLI flags.

Run every suite from the repository root as a module (``python -m benchmarks.cpu_scan``), so that
``benchmarks`` imports as a package and ``vision_ssm`` comes from this checkout (or the installed
package) without ``sys.path`` edits.

- :func:`environment` / :func:`print_header`: date, host, CPU, cores, load, threads, versions,
  GPU and commit, printed as the first line and stored in the JSON.
- :func:`measure`: wall time of one or more callables after a warm-up, in several windows that
  alternate between the callables (a load change on a shared machine then hits all of them
  alike); :class:`Stats` per callable (median, min, max, spread).
- :func:`kernel_stats`: GPU kernel time through ``triton.testing.do_bench`` (L2 flushed between
  repetitions), median with the 20%/80% quantiles.
- :func:`parser` / :func:`finish`: the shared flags (``--json``, ``--threads``) and the JSON file.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Stats:
    """Times of one measurement in ms: ``median`` of the windows, ``lo``/``hi`` their extremes
    (for :func:`kernel_stats`: the 20% / 80% quantiles), ``n`` windows."""

    median: float
    lo: float
    hi: float
    n: int

    @property
    def spread(self) -> float:
        """``(hi - lo) / median``: how far the windows scattered (0 for one window)."""
        return (self.hi - self.lo) / self.median if self.median else float("nan")

    @classmethod
    def of(cls, times_ms: list[float]) -> Stats:
        return cls(statistics.median(times_ms), min(times_ms), max(times_ms), len(times_ms))

    @classmethod
    def failed(cls) -> Stats:
        nan = float("nan")
        return cls(nan, nan, nan, 0)

    def as_dict(self) -> dict[str, float]:
        return dict(asdict(self), spread=self.spread)

    def __str__(self) -> str:
        return f"{self.median:.3f} ms (±{50 * self.spread:.0f}%)"


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def measure(fns: Mapping[str, Callable[[], Any]], *, warmup: int = 1, windows: int = 5, iters: int = 1,
            device: str = "cpu") -> dict[str, Stats]:
    """Median ms per call of each callable.

    Each callable runs ``warmup`` times first (compilation, caches, allocator), then ``windows``
    rounds; in each round every callable in turn runs ``iters`` times inside one timed window
    (``time.perf_counter`` on CPU, CUDA events on ``device="cuda"``). The window time over ``iters``
    is one sample.
    """
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    _sync(device)
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(windows):
        for name, fn in fns.items():
            if device == "cuda":
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                for _ in range(iters):
                    fn()
                end.record()
                torch.cuda.synchronize()
                samples[name].append(start.elapsed_time(end) / iters)
            else:
                t0 = time.perf_counter()
                for _ in range(iters):
                    fn()
                samples[name].append((time.perf_counter() - t0) * 1e3 / iters)
    return {name: Stats.of(ts) for name, ts in samples.items()}


def kernel_stats(fn: Callable[[], Any], *, grad_to_none: list[torch.Tensor] | None = None, warmup: int = 25,
                 rep: int = 200) -> Stats:
    """GPU time of ``fn`` by ``triton.testing.do_bench`` (``warmup``/``rep`` in ms of device time;
    L2 flushed before every repetition): median and 20% / 80% quantiles."""
    from triton.testing import do_bench

    med, lo, hi = do_bench(fn, warmup=warmup, rep=rep, grad_to_none=grad_to_none, quantiles=[0.5, 0.2, 0.8])
    return Stats(med, lo, hi, 0)


def _commit() -> str | None:
    try:
        cmd = ["git", "-C", str(ROOT), "describe", "--always", "--dirty", "--abbrev=7"]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def environment(device: str = "cpu") -> dict[str, Any]:
    """Where and with what a run happens (goes first into every output)."""
    import importlib.metadata as md

    env: dict[str, Any] = {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "host": platform.node(), "cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
        "load_average": round(os.getloadavg()[0], 1) if hasattr(os, "getloadavg") else None,
        "torch_threads": torch.get_num_threads(), "python": platform.python_version(), "commit": _commit(),
    }
    for pkg in ("torch", "triton", "timm", "numba", "mamba_ssm"):
        try:
            env[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            env[pkg] = None
    if device == "cuda":
        env["gpu"] = torch.cuda.get_device_name()
        env["cuda"] = torch.version.cuda
    return env


def print_header(env: Mapping[str, Any], extra: str = "") -> None:
    """One line: ``# date | hardware | threads | versions | load | commit`` (+ ``extra``)."""
    hw = env.get("gpu") or env["cpu"]
    versions = ", ".join(f"{k} {env[k]}" for k in ("torch", "triton", "timm", "numba", "mamba_ssm") if env.get(k))
    print(f"# {env['date']} | {hw} | {env['cores']} cores, torch threads {env['torch_threads']} | {versions} | "
          f"load average {env['load_average']} | commit {env['commit']}" + (f" | {extra}" if extra else ""),
          flush=True)


def set_threads(n: int | None) -> None:
    """torch (and numba, when installed) threads; ``None`` keeps the defaults."""
    if not n:
        return
    torch.set_num_threads(n)
    try:
        import numba

        numba.set_num_threads(n)
    except ImportError:
        pass


def parser(doc: str | None) -> argparse.ArgumentParser:
    """An argument parser with the suite's docstring and the shared flags ``--json PATH`` and
    ``--threads N``."""
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--json", default=None, metavar="PATH", help="also write the header and every number here")
    p.add_argument("--threads", type=int, default=None, help="torch/numba CPU threads (default: all cores)")
    return p


def _plain(obj: Any) -> Any:
    if isinstance(obj, Stats):
        return obj.as_dict()
    if isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_plain(v) for v in obj]
    return obj


def finish(path: str | None, env: Mapping[str, Any], results: Any) -> None:
    """Write ``{"env": env, "results": results}`` (``Stats`` as dicts) to ``path`` if given."""
    if path:
        Path(path).write_text(json.dumps({"env": _plain(env), "results": _plain(results)}, indent=1))
