"""Retrieval over knowledge bases: semantic, full-text, hybrid and keyword search (Service API and workflow node)."""
