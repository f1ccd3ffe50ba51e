"""Retrieval over knowledge bases: semantic, full-text, hybrid and keyword search (Service API and workflow node).

- ``model``: Dify's ``retrieval_model`` (search method, top_k, threshold, weights, metadata filter), parsed.
- ``services``: ``Retriever``: groups datasets by how they can be searched, ranks, fuses, loads the hits.
- ``search``: the SQL of each search method and the fusions; ``filters``: metadata conditions as SQL.
- ``controllers``/``schemas``: ``POST /v1/datasets/{id}/retrieve``; ``port``: the workflow node's retriever.
"""
