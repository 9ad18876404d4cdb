"""Benchmarks: ``python -m bench`` runs them all; ``python -m bench.bench_NAME`` runs one.

Each benchmark measures a baseline in the same run and prints medians and ratios against it.
"""
