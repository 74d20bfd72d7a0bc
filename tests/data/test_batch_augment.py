"""Random flips / quarter turns of training batches (vision_ssm.data.batch_augment)."""
import pytest
import torch

from vision_ssm.data.batch_augment import augment_batch


def _elements(x: torch.Tensor) -> list[torch.Tensor]:
    """The 8 images of the dihedral group's orbit of ``x`` (C, S, S)."""
    out = []
    for k in range(4):
        r = torch.rot90(x, k, dims=(-2, -1))
        out += [r, r.flip(-1)]
    return out


def _index(img: torch.Tensor, orbit: list[torch.Tensor]) -> int:
    hits = [i for i, o in enumerate(orbit) if torch.equal(o, img)]
    assert len(hits) == 1, "augmented image is not exactly one element of the orbit"
    return hits[0]


def test_dihedral_draws_every_element_and_keeps_content():
    x = torch.arange(2 * 5 * 5, dtype=torch.float32).view(1, 2, 5, 5)
    orbit = _elements(x[0])
    batch = x.expand(400, -1, -1, -1).contiguous()
    out = augment_batch(batch, "dihedral", torch.Generator().manual_seed(0))
    counts = torch.bincount(torch.tensor([_index(img, orbit) for img in out]), minlength=8)
    assert (counts > 20).all(), counts  # all 8 elements, roughly equally often


def test_flip_never_turns():
    x = torch.arange(3 * 4 * 4, dtype=torch.float32).view(1, 3, 4, 4).expand(200, -1, -1, -1).contiguous()
    out = augment_batch(x, "flip", torch.Generator().manual_seed(1))
    flips = [x[0], x[0].flip(-1), x[0].flip(-2), x[0].flip(-1).flip(-2)]
    seen = {next(i for i, f in enumerate(flips) if torch.equal(f, img)) for img in out}
    assert seen == {0, 1, 2, 3}


def test_none_is_identity_and_seeded_draws_repeat():
    x = torch.randn(6, 3, 8, 8)
    assert augment_batch(x, "none") is x
    a = augment_batch(x, "dihedral", torch.Generator().manual_seed(3))
    b = augment_batch(x, "dihedral", torch.Generator().manual_seed(3))
    assert torch.equal(a, b)


@pytest.mark.parametrize("mode, shape, match", [
    ("rotate", (2, 3, 4, 4), "augment must be one of"),
    ("flip", (3, 4, 4), r"expects images \(B, C, H, W\)"),
    ("dihedral", (2, 3, 4, 6), "needs square images"),
])
def test_errors(mode, shape, match):
    with pytest.raises(ValueError, match=match):
        augment_batch(torch.zeros(shape), mode)


def test_recipe_refuses_unknown_augment(tmp_path):
    from vision_ssm.tasks.anomaly import TrainConfig, train

    with pytest.raises(ValueError, match="augment must be one of"):
        train(TrainConfig(data_root=str(tmp_path), augment="mixup", output=str(tmp_path / "o")))
