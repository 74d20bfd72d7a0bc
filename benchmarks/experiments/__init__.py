"""Experiments: device-session scripts and parked kernels (``python -m benchmarks.experiments.<name>``;
see README.md and HISTORY.md)."""
