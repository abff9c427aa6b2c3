"""Benchmarks of the replicator against baselines measured in the same run (see bench/README.md).

Run the scripts as modules from the repository root, e.g. `python -m bench.run --scale quick`.
"""
