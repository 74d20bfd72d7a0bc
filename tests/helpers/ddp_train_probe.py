"""Run by the torchrun test on every rank: the recipe's ``train`` plus what a test needs to see from each rank.

Each rank writes ``PROBE/rank<r>.safetensors`` (its final parameters) and ``PROBE/rank<r>.json`` (world size and
how many times it called ``save_weights`` / ``save_state``). Arguments: PROBE, then train.py's flags.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from safetensors.torch import save_file

from vision_ssm.tasks import classification as cls_task
from vision_ssm.tasks.classification_config import config_from_args


def main() -> None:
    probe = Path(sys.argv[1])
    rank = int(os.environ.get("RANK", "0"))
    calls = {"save_weights": 0, "save_state": 0}
    for name in calls:
        real = getattr(cls_task, name)

        def counted(*a, _real=real, _name=name, **k):
            calls[_name] += 1
            return _real(*a, **k)

        setattr(cls_task, name, counted)
    seen = {}
    real_build = cls_task.build_model

    def keep(cfg, num_classes):
        seen["model"] = real_build(cfg, num_classes)
        return seen["model"]

    cls_task.build_model = keep
    res = cls_task.train(config_from_args(sys.argv[2:]))
    save_file({k: v.detach().contiguous() for k, v in seen["model"].state_dict().items()},
              str(probe / f"rank{rank}.safetensors"))
    (probe / f"rank{rank}.json").write_text(json.dumps({"world_size": res["world_size"], "calls": calls,
                                                         "train_loss": res["history"][-1]["train_loss"]}))


if __name__ == "__main__":
    main()
