"""Embeddings: the models that turn text into vectors and where the vectors go.

- ``embedders``: the ``Embedder`` interface and its implementations (local e5-small, local static, any
  OpenAI-compatible endpoint).
- ``providers``: which embedder a dataset uses (``Embedders``, resolved once per process) and which models a
  dataset key may choose.
- ``vectors``: embedding spaces (one HNSW index per model and table), the embedding cache, bulk vector writes.
"""
