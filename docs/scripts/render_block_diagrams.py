"""Write the block diagrams of docs/layers/ (plain SVG, no dependencies): VSS, HSS/LSS, MambaVision mixer.

Run from the repository root: ``python docs/scripts/render_block_diagrams.py``. Each diagram is a list of
boxes (centre x, centre y, text, colour) and arrows between box indices, placed by hand.
"""
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "assets" / "blocks"
COLORS = {"ssm": ("#f4ecf7", "#8e44ad"), "norm": ("#eaf2fb", "#2e86c1"), "lin": ("#e9f7ef", "#28b463"),
          "io": ("#f2f3f4", "#7f8c8d"), "op": ("#fdf2e9", "#e67e22")}
BW, BH = 150, 34


def half(text):
    """Half width and half height of a node."""
    if text in ("+", "×"):
        return 13, 13
    if text == "concat":
        return 22, 22
    return BW / 2, BH / 2


def svg(boxes, arrows, width, height, notes=()):
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
           'font-family="Helvetica, Arial, sans-serif">', '<rect width="100%" height="100%" fill="#ffffff"/>',
           '<defs><marker id="a" markerWidth="10" markerHeight="8" refX="9" refY="4" orient="auto">'
           '<path d="M0,0 L10,4 L0,8 z" fill="#555"/></marker></defs>']
    for i, j, *via in arrows:
        (x1, y1), (x2, y2) = boxes[i][:2], boxes[j][:2]
        (w1, h1), (w2, h2) = half(boxes[i][2]), half(boxes[j][2])
        pts = [(x1, y1 + h1)] + [tuple(p) for p in via] + [(x2, y2 - h2)]
        if via and via[0][1] == y1 + 17 and via[0][0] != x1:  # leave from the side
            pts[0] = (x1 + (w1 if via[0][0] > x1 else -w1), via[0][1])
        if via and via[-1][1] == y2:  # arrive from the side
            pts[-1] = (x2 + (w2 if via[-1][0] > x2 else -w2), y2)
        d = " ".join(f"{'M' if k == 0 else 'L'}{x:.0f},{y:.0f}" for k, (x, y) in enumerate(pts))
        out.append(f'<path d="{d}" fill="none" stroke="#555" stroke-width="1.4" marker-end="url(#a)"/>')
    for x, y, text, kind in boxes:
        fill, stroke = COLORS[kind]
        shape = "circle" if text in ("+", "×", "concat") else "rect"
        if shape == "circle":
            r = 22 if text == "concat" else 13
            out.append(f'<circle cx="{x}" cy="{y}" r="{r}" fill="{fill}" stroke="{stroke}" stroke-width="1.5"/>')
        else:
            out.append(f'<rect x="{x - BW / 2}" y="{y - BH / 2}" width="{BW}" height="{BH}" rx="6" fill="{fill}" '
                       f'stroke="{stroke}" stroke-width="1.5"/>')
        out.append(f'<text x="{x}" y="{y + 4.5}" font-size="{11 if text == "concat" else 12.5}" '
                   f'text-anchor="middle" fill="#111">{text}</text>')
    for x, y, text in notes:
        out.append(f'<text x="{x}" y="{y}" font-size="11" fill="#555">{text}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def vss():
    b = [
        (120, 25, "x  (B, H, W, C)", "io"),
        (120, 80, "norm", "norm"),
        (120, 135, "SS2D", "ssm"),
        (120, 190, "+", "op"),
        (120, 245, "norm2", "norm"),
        (120, 300, "MLP (C → 4C → C)", "lin"),
        (120, 355, "+", "op"),
        (120, 410, "out (B, H, W, C)", "io"),
    ]
    a = [(0, 1), (1, 2), (2, 3), (3, 4), (4, 5), (5, 6), (6, 7), (0, 3, (230, 42), (230, 190)),
         (3, 6, (230, 207), (230, 355))]
    return svg(b, a, 300, 440, [(236, 120, "skip"), (236, 290, "skip")])


def ss2d():
    b = [
        (170, 25, "x  (B, H, W, C)", "io"),
        (170, 80, "in_proj: C → 2D", "lin"),
        (80, 140, "DWConv 3×3 + SiLU", "op"),
        (80, 200, "route: K sequences", "op"),
        (80, 260, "selective scan ×K", "ssm"),
        (80, 320, "merge: Σ over K", "op"),
        (80, 380, "out_norm", "norm"),
        (260, 200, "SiLU (gate z)", "op"),
        (170, 440, "×", "op"),
        (170, 495, "out_proj: D → C", "lin"),
        (170, 550, "out (B, H, W, C)", "io"),
    ]
    a = [(0, 1), (1, 2, (80, 110)), (2, 3), (3, 4), (4, 5), (5, 6), (6, 8, (80, 440)), (1, 7, (260, 110)),
         (7, 8, (260, 440)), (8, 9), (9, 10)]
    return svg(b, a, 360, 580, [(10, 230, "(B, K, D, L)"), (272, 130, "z")])


def hss_lss():
    b = [
        (255, 25, "x  (B, H, W, C)", "io"),
        (90, 90, "HSS block × 2 or 3", "ssm"),
        (255, 90, "1×1 → DW 5×5 → 1×1", "op"),
        (420, 90, "1×1 → DW 7×7 → 1×1", "op"),
        (255, 160, "concat", "op"),
        (255, 225, "1×1 conv: 3C → C", "lin"),
        (255, 285, "+", "op"),
        (255, 340, "out (B, H, W, C)", "io"),
    ]
    a = [(0, 1, (90, 55)), (0, 2), (0, 3, (420, 55)), (1, 4, (90, 160)), (2, 4), (3, 4, (420, 160)), (4, 5), (5, 6),
         (6, 7), (0, 6, (510, 42), (510, 285))]
    return svg(b, a, 530, 370, [(15, 125, "HSS: x + DropPath(SS2D(LN x))"), (345, 125, "IN + SiLU after each conv")])


def mambavision():
    b = [
        (190, 25, "tokens (B', L', C)", "io"),
        (190, 80, "in_proj: C → C", "lin"),
        (90, 140, "x: conv1d k3 'same'", "op"),
        (290, 140, "z: conv1d k3 'same'", "op"),
        (90, 195, "SiLU", "op"),
        (290, 195, "SiLU", "op"),
        (90, 255, "selective scan (1 dir)", "ssm"),
        (190, 320, "concat", "op"),
        (190, 385, "out_proj: C → C", "lin"),
        (190, 440, "out (B', L', C)", "io"),
    ]
    a = [(0, 1), (1, 2, (90, 110)), (1, 3, (290, 110)), (2, 4), (3, 5), (4, 6), (6, 7, (90, 320)),
         (5, 7, (290, 320)), (7, 8), (8, 9)]
    return svg(b, a, 380, 470, [(5, 290, "C/2 channels"), (300, 260, "C/2, no SSM")])


if __name__ == "__main__":
    OUT.mkdir(parents=True, exist_ok=True)
    for name, fn in {"vss_block": vss, "ss2d": ss2d, "hss_lss": hss_lss, "mambavision_mixer": mambavision}.items():
        (OUT / f"{name}.svg").write_text(fn())
        print("wrote", OUT / f"{name}.svg")
