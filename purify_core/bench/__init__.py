"""Benchmarks: `python -m purify_core.bench claims|perf|defaults`."""
