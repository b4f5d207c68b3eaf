"""Benchmark entries: each module defines ALGOS, a list of ann.Algo."""
