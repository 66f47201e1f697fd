"""Benchmarks: each prints figures measured against the local fakes (see README)."""
