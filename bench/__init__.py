"""Benchmarks, run by `make bench`. Figures are ratios against baselines from the same run."""
