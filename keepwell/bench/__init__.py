"""Benchmarks (``keepwell bench NAME``): one module per benchmark, each printing JSON with
numbers and ratios. Speed is measured here, never asserted in tests."""
