"""Benchmarks (`just bench [name]`): not collected by pytest; each prints a table and writes a results file."""
