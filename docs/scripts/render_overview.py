"""Write docs/assets/overview.svg, the home page's picture of the library (plain SVG, no dependencies).

Run from the repository root: ``python docs/scripts/render_overview.py``.
"""
from pathlib import Path

W, H = 780, 440
X0, BW = 150, 114  # left edge of the columns, column width
OUT = Path(__file__).resolve().parents[1] / "assets" / "overview.svg"
parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" '
         'font-family="Helvetica, Arial, sans-serif">',
         '<rect width="100%" height="100%" fill="#ffffff"/>',
         '<defs><marker id="arr" markerWidth="10" markerHeight="8" refX="9" refY="4" orient="auto">'
         '<path d="M0,0 L10,4 L0,8 z" fill="#555"/></marker></defs>']


def box(x, y, w, h, fill, stroke, text, size=12):
    parts.append(f'<rect x="{x}" y="{y}" width="{w}" height="{h}" rx="7" fill="{fill}" stroke="{stroke}" '
                 'stroke-width="1.5"/>')
    lines = text.split("\n")
    for i, line in enumerate(lines):
        ty = y + h / 2 + (i - (len(lines) - 1) / 2) * (size + 3) + size * 0.35
        parts.append(f'<text x="{x + w / 2}" y="{ty:.1f}" font-size="{size}" text-anchor="middle" '
                     f'fill="#111">{line}</text>')


def label(x, y, text, size, color, anchor="start", bold=False):
    weight = ' font-weight="bold"' if bold else ""
    parts.append(f'<text x="{x}" y="{y}" font-size="{size}" fill="{color}" text-anchor="{anchor}"{weight}>'
                 f'{text}</text>')


def arrow(x, y1, y2):
    parts.append(f'<line x1="{x}" y1="{y1}" x2="{x}" y2="{y2}" stroke="#555" stroke-width="1.5" '
                 'marker-end="url(#arr)"/>')


def column(i):
    return X0 + i * (BW + 10)


FLOORS = [(20, "tasks / recipes", "#fdf2e9", "#e67e22"), (100, "models (timm)", "#eaf2fb", "#2e86c1"),
          (180, "layers (blocks)", "#e9f7ef", "#28b463"), (260, "ops", "#f4ecf7", "#8e44ad"),
          (350, "backends", "#f2f3f4", "#7f8c8d")]
for y, name, _, color in FLOORS:
    label(14, y + 36, name, 13, color, bold=True)
task = FLOORS[0][2:]
box(X0, 20, 190, 60, *task, "anomaly detection\nMambaAD, MambaAlign")
box(X0 + 205, 20, 190, 60, *task, "RGB-IR detection\nFusion-Mamba + FCOS")
box(X0 + 410, 20, 200, 60, *task, "your model\ntimm.create_model(...)")
models = ["VMamba", "MambaVision", "MambaAD", "MambaAlign", "Fusion-Mamba"]
blocks = ["SS2D · VSS", "MambaVision\nmixer · stages", "HSS · LSS", "Mamba 1-D · QSVSS\nCMI · AAF", "SSCS · DSSF\nFMB"]
backends = ["reference\nany device", "chunked\npure PyTorch", "numba\nCPU", "triton\nNVIDIA GPU", "mamba_ssm\noptional"]
for i in range(5):
    box(column(i), 100, BW, 60, *FLOORS[1][2:], models[i] + "\ntimm model")
    box(column(i), 180, BW, 60, *FLOORS[2][2:], blocks[i], 11 if "\n" in blocks[i] else 12)
    box(column(i), 350, BW, 50, *FLOORS[4][2:], backends[i])
    cx = column(i) + BW / 2
    arrow(cx, 160, 178)
    arrow(cx, 240, 258)
    arrow(cx, 330, 348)
box(X0, 260, 310, 70, *FLOORS[3][2:], "selective_scan(u, δ, A, B, C, D, z, ...)\none signature (mamba-ssm's)\n"
    "ss2d_scan · causal_conv1d")
box(X0 + 320, 260, 290, 70, *FLOORS[3][2:], "scan orders · directions\nsweep snake zigzag zorder hilbert\n"
    "route / merge (any H×W)")
for cx in (X0 + 95, X0 + 300, X0 + 515):
    arrow(cx, 80, 98)
label(W / 2, 428, "imports only go downwards · the backend is chosen per device, at call time · "
      "import vision_ssm imports nothing optional", 11, "#555", "middle")
parts.append("</svg>")
OUT.write_text("\n".join(parts) + "\n")
print(f"wrote {OUT}")
