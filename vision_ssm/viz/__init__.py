"""Pictures (nothing is drawn on the ops floor): scan orders and direction sets as PNGs (needs Pillow)."""
from .scan_orders import render_directions, render_scan_order

__all__ = ["render_directions", "render_scan_order"]
