"""Tests of app/knowledge/metadata: metadata fields and document values."""
