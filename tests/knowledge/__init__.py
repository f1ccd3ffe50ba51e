"""Tests of app/knowledge, one folder per area (documents, segments, metadata, tags, indexing, embeddings,
retrieval); the fixtures (conftest.py) and helpers (api_helpers.py, hostile_files.py) they share stay here."""
