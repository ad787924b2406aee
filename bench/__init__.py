"""Benchmarks of gitopsd against kubectl and git: `python -m bench`, see bench/README.md."""
