"""Tests of the dataset resource (app/knowledge/datasets)."""
