"""camgate's benchmarks: `python3 bench/run.py` (see the README, section Benchmarks)."""
