"""Task datasets used by the recipes."""
from .anomaly_folders import AnomalyDataset, list_classes
from .anomaly_synthetic import write_tiny_dataset
from .digits import export_digits
from .rgbir_detection import (
    RGBIRDetectionDataset,
    build_rgbir_dataset,
    coco_rgbir,
    collate_pairs,
    voc_rgbir,
    yolo_rgbir,
)
from .rgbir_synthetic import SyntheticRGBIR
from .rgbir_transforms import default_train_transforms
from .rgbx_dataset import RGBXDataset
from .rgbx_folders import list_rgbx_classes
from .rgbx_synthetic import build_align_demo, write_tiny_rgbx
from .texture_demo import build_texture_demo

__all__ = ["AnomalyDataset", "build_texture_demo", "export_digits", "list_classes", "write_tiny_dataset"]
__all__ += ["RGBIRDetectionDataset", "SyntheticRGBIR", "build_rgbir_dataset", "coco_rgbir", "collate_pairs",
            "default_train_transforms", "voc_rgbir", "yolo_rgbir"]
__all__ += ["RGBXDataset", "build_align_demo", "list_rgbx_classes", "write_tiny_rgbx"]
