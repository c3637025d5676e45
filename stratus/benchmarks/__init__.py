"""Benchmarks: commands that print figures (``python -m stratus.benchmarks.<name>``), never timed tests."""
