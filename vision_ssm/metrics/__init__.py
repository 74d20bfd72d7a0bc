"""Task metrics."""
from .anomaly import METRIC_KEYS, evaluate, evaluate_per_class

__all__ = ["METRIC_KEYS", "evaluate", "evaluate_per_class"]
# detection metrics (pycocotools, imported when used): vision_ssm.metrics.detection
