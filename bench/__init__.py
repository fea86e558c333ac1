"""Benchmark scripts (run them; they are not timed tests). A package so one can reuse another."""
