"""The parked whole-image N = 1 SS2D forward kernel (see README.md)."""
