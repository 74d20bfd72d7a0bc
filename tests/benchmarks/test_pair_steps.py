"""``profile_pair.pair_steps`` (shared with ``host_pair``) hands out each step with its model in the right mode.

The steps need a GPU; the builders are replaced by CPU stand-ins that set the mode as the real ones do
(``train_step``: ``model.train()``, ``infer_step``: ``model.eval()``, both when the step is built).
"""
from __future__ import annotations

import torch

from benchmarks.experiments import profile_pair


class _Net(torch.nn.BatchNorm1d):
    def cuda(self, device=None):
        return self


def _stand_ins(monkeypatch):
    def train_step(m, bs, img):
        m.train()
        return lambda: None

    def infer_step(m, bs, img):
        m.eval()
        return lambda: None

    monkeypatch.setattr(profile_pair, "train_step", train_step)
    monkeypatch.setattr(profile_pair, "infer_step", infer_step)
    monkeypatch.setattr(profile_pair, "official_builder", lambda name, roots: (lambda: _Net(2), "official"))
    monkeypatch.setattr(profile_pair.timm, "create_model", lambda name, num_classes: _Net(2))


def test_training_steps_run_in_train_mode_and_inference_steps_in_eval(monkeypatch):
    _stand_ins(monkeypatch)
    seen = [(label, model.training) for label, model, _ in profile_pair.pair_steps(["net", "vmamba=/x", "4", "8"])]
    assert seen == [("net training bs4", True), ("official training bs4", True),
                    ("net inference bs8", False), ("official inference bs8", False)]
