"""Indexing: how a document's file or text becomes searchable segments. One ``index_document`` job per document
(``jobs/knowledge.py``, queue ``indexing``) runs :class:`~app.knowledge.indexing.pipeline.DocumentIndexer`::

    extract -> clean -> split -> keywords + chunk text -> embed -> store
    (waiting -> parsing -> cleaning -> splitting -> indexing -> completed; ``error`` or ``paused`` on the way)

- ``lifecycle``: start, pause, resume and retry a document's indexing (in the caller's transaction, with its job).
- ``pipeline``: the job's body; commits each stage's status and one batch of vectors at a time (crash safety).
- ``extract`` (file bytes to text), ``cleaning`` (Dify's pre-processing rules), ``splitting`` (process rules and
  the recursive splitter), ``keywords`` (the economy index's keywords): pure functions, one per stage.
- ``parsing``: extract, clean and split as sandbox functions; ``confined`` calls them in confined children of
  the worker's sandbox, so a hostile file can only stall or bloat that child.
- ``chunk_text``: what a segment stores besides its text (length, token estimate, keywords, hash), shared with
  the segment API.
- ``rag_pipeline``: Dify's knowledge-pipeline routes, refused by name (Sluice's pipeline is this fixed one).

Embedding and vector storage live in :mod:`app.knowledge.embeddings`; the rows written are
``db.models.Segment`` and ``db.models.ChildChunk``.
"""
