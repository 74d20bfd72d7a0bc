"""Task metrics."""
from .anomaly import METRIC_KEYS, evaluate, evaluate_per_class

__all__ = ["METRIC_KEYS", "evaluate", "evaluate_per_class"]
