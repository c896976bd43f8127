"""Benchmarks: each measures revealed beside a baseline run in the same process, same data, same moment."""
