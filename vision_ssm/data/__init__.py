"""Task datasets used by the recipes."""
from .anomaly_folders import AnomalyDataset, list_classes
from .anomaly_synthetic import write_tiny_dataset
from .digits import export_digits
from .texture_demo import build_texture_demo

__all__ = ["AnomalyDataset", "build_texture_demo", "export_digits", "list_classes", "write_tiny_dataset"]
