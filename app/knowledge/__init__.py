"""Knowledge bases (Dify's datasets), laid out by stage:

- ``datasets``: the dataset resource (create, list, show, update, delete) and ``get_dataset``.
- ``documents``, ``segments``, ``metadata``, ``tags``: the other Service API resources of a dataset.
- ``indexing``: a document's way from file to segments (extract, clean, split, keywords, embed, store), its
  start/pause/resume, and the ``index_document`` job's body.
- ``embeddings``: embedding models, the choice of one per dataset, vector storage.
- ``retrieval``: search over datasets (semantic, full-text, hybrid, keyword), for the API and the workflow node.
- ``errors`` (the domain errors, Dify's codes) and ``accounts`` (who ``created_by`` names) are shared by all.
"""
