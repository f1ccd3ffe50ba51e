"""Metadata fields of a dataset and their values on documents (Service API, dataset key)."""
