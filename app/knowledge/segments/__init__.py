"""Segments and child chunks of a document (Service API, dataset key)."""
