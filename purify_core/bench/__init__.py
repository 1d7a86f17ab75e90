"""Benchmarks of the core: `python -m purify_core bench claims|perf|defaults|reactivate|heldout`."""
