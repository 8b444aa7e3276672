"""The floor of benchmarks/load.py: the product's site plus one bare JSON view.

Only the benchmark serves it (``benchmarks.floor.settings``); the product's
URLs never include it.
"""
