"""Benchmark harness: each stage of the course against a plain baseline (``python -m bench.run``; see README.md)."""
