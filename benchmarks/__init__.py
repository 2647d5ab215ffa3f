"""Measurements on real data: clients of the public API, run as `python -m benchmarks.NAME`."""
