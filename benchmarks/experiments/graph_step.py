"""Device-session helper: a training step captured in CUDA graphs without torch.compile, against eager.

``python -m benchmarks.experiments.graph_step [MODELS] [BATCH_TRAIN] [BATCH_INFER]`` (models comma-separated,
default ``vmamba_tiny_s1l8,mambavision_tiny``). For each model: eager bf16 training and inference steps, then
the same with the model's forward and backward replayed from CUDA graphs by
:class:`vision_ssm.tasks.cuda_graph.CudaGraphForward` (the recipe's ``--cuda-graph``), and inference replayed
from one ``torch.cuda.CUDAGraph``. The
optimizer step stays outside the graph (AdamW, ``foreach`` as in eager; ``fused`` timed as well). Alternating
timed windows (:func:`benchmarks.common.measure`), img/s and the ratio to eager. Also checks that one graphed
step gives the same loss as eager from the same weights.
"""
from __future__ import annotations

import copy
import sys

import timm
import torch
import torch.nn.functional as F

import vision_ssm  # noqa: F401  (registers the models)
from benchmarks import common
from vision_ssm.tasks.cuda_graph import CudaGraphForward


def steps(model, x, y, fused: bool = False, graphed: bool = False):
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=fused or None)
    fwd = CudaGraphForward(model, torch.bfloat16) if graphed else model

    def step():
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = F.cross_entropy(fwd(x), y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss

    return step


def infer_graph(model, bs: int):
    model.eval()
    x = torch.randn(bs, 3, 224, 224, device="cuda")

    def eager():
        with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16):
            return model(x)

    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        for _ in range(3):
            eager()
    torch.cuda.current_stream().wait_stream(s)
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g), torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16,
                                                                     cache_enabled=False):
        out = model(x)
    ref = eager()
    g.replay()
    torch.cuda.synchronize()
    err = (out.float() - ref.float()).abs().max().item()
    return eager, g.replay, err


def main() -> None:
    names = (sys.argv[1] if len(sys.argv) > 1 else "vmamba_tiny_s1l8,mambavision_tiny").split(",")
    bs_t = int(sys.argv[2]) if len(sys.argv) > 2 else 64
    bs_i = int(sys.argv[3]) if len(sys.argv) > 3 else 128
    torch.backends.cudnn.benchmark = True
    for name in names:
        torch.manual_seed(0)
        base = timm.create_model(name, num_classes=1000, drop_path_rate=0.0).cuda()
        x = torch.randn(bs_t, 3, 224, 224, device="cuda")
        y = torch.randint(0, 1000, (bs_t,), device="cuda")
        models = {k: copy.deepcopy(base) for k in ("eager", "eager_fused", "graphed", "graphed_fused")}
        # same weights, one step each: the losses must agree
        fns = {k: steps(m, x, y, fused="fused" in k, graphed=k.startswith("graphed")) for k, m in models.items()}
        torch.manual_seed(1)
        first = {k: f().item() for k, f in fns.items()}
        print(f"{name}: first-step loss " + ", ".join(f"{k} {v:.5f}" for k, v in first.items()))
        st = common.measure(fns, warmup=3, windows=5, iters=10, device="cuda")
        e = st["eager"].median
        for k, s in st.items():
            print(f"  train bs{bs_t} {k:14s} {bs_t / s.median * 1e3:8.0f} img/s  spread ±{50 * s.spread:.0f}%  "
                  f"{e / s.median:.2f}x eager")
        del fns, models
        torch.cuda.empty_cache()
        eager, replay, err = infer_graph(base, bs_i)
        st = common.measure({"eager": eager, "graph": replay}, warmup=3, windows=5, iters=10, device="cuda")
        print(f"  infer bs{bs_i} eager {bs_i / st['eager'].median * 1e3:8.0f} img/s, CUDA graph "
              f"{bs_i / st['graph'].median * 1e3:8.0f} img/s ({st['eager'].median / st['graph'].median:.2f}x), "
              f"max |graph - eager| {err:.2e}")
        del base
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
