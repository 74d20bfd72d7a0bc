"""Benchmark suites (run from the repository root: ``python -m benchmarks.<suite>``; see README.md)."""
