"""Reusable train/evaluate loops of each task (used by examples/ and the CLI)."""
