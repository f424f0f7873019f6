"""Operator commands: benchmarks, metrics and the smoke test of a deployed service."""
