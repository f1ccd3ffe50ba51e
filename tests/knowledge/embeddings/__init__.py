"""Tests of app/knowledge/embeddings: embedding providers, the model allowlist."""
