"""The scan-order picture helper (needs Pillow; skipped without it)."""
import pytest
import torch

from vision_ssm.ops import get_directions
from vision_ssm.viz.scan_orders import render_directions, render_scan_order

PIL = pytest.importorskip("PIL")


def test_render_scan_order_draws_start_and_end(tmp_path):
    out = tmp_path / "hilbert.png"
    img = render_scan_order("hilbert", 4, 6, path=out, cell=20, title="")
    assert out.is_file() and img.size == (6 * 20 + 20, 4 * 20 + 20)
    order = get_directions("hilbert", 4, 6, 1).index[0]

    def centre(p):
        r, c = divmod(int(p), 6)
        return (10 + c * 20 + 10, 10 + r * 20 + 10)

    assert img.getpixel(centre(order[0])) == (20, 150, 60)  # start marker
    assert img.getpixel(centre(order[-1])) == (200, 30, 30)  # end marker
    from PIL import Image

    assert Image.open(out).size == img.size


def test_render_directions_panels_and_errors():
    img = render_directions("quadsnake", 3, 5, 4, cell=10)
    img8 = render_directions(get_directions("zorder", 3, 5, 8), cell=10)
    assert img8.size[0] == img.size[0] and img8.size[1] > img.size[1]  # 4 columns, 2 rows
    with pytest.raises(ValueError, match="entries"):
        render_scan_order(torch.arange(5), 2, 3)
    with pytest.raises(ValueError, match="required"):
        render_directions("sweep")
