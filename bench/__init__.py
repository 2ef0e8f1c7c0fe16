"""Benchmarks that print numbers: Captain measured on this machine, Slurm beside it on demand.

`python -m bench` (or `bash bench/run`) runs the suite; see bench/__main__.py for options.
"""
