"""Task datasets used by the recipes."""
from .anomaly_folders import AnomalyDataset, list_classes
from .anomaly_synthetic import write_tiny_dataset
from .rgbx_dataset import RGBXDataset
from .rgbx_folders import list_rgbx_classes
from .rgbx_synthetic import build_align_demo, write_tiny_rgbx
from .texture_demo import build_texture_demo

__all__ = [
    "AnomalyDataset",
    "RGBXDataset",
    "build_align_demo",
    "build_texture_demo",
    "list_classes",
    "list_rgbx_classes",
    "write_tiny_dataset",
    "write_tiny_rgbx",
]
