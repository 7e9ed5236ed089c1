"""Benchmarks (not tests): run with `scripts/bench`; results go to docs/benchmarks.md."""
