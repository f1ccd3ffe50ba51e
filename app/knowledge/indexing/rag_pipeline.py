"""Dify's knowledge-pipeline routes (``/v1/datasets/pipeline/...``, ``/v1/datasets/{id}/pipeline/...``), refused by
name.

Knowledge pipelines are Dify's plugin-driven ingestion graphs (datasource plugins, pipeline workflows); Sluice
indexes documents with its own fixed pipeline (``app.knowledge.indexing.pipeline``) and has no plugins to run. Each route
answers 400 ``pipeline_not_supported`` after the dataset key is checked, so a client learns at once, by a code it
can test, that it must use the document endpoints instead.
"""

from __future__ import annotations

import uuid

from litestar import Controller, get, post

from app.errors import InvalidParam, responses


class PipelineNotSupported(InvalidParam):
    """Knowledge pipelines are not supported by Sluice: create documents with the document endpoints (create-by-text, create-by-file) instead."""

    code = "pipeline_not_supported"


class KnowledgePipelineController(Controller):
    path = "/v1/datasets"
    tags = ["service api: knowledge"]

    @post("/pipeline/file-upload", status_code=201, responses=responses(401))
    async def upload_pipeline_file(self) -> None:
        """Refused: 400 `pipeline_not_supported`."""
        raise PipelineNotSupported()

    @get("/{dataset_id:uuid}/pipeline/datasource-plugins", responses=responses(401, 404))
    async def datasource_plugins(self, dataset_id: uuid.UUID) -> None:
        """Refused: 400 `pipeline_not_supported`."""
        raise PipelineNotSupported()

    @post(
        "/{dataset_id:uuid}/pipeline/datasource/nodes/{node_id:str}/run",
        status_code=200,
        responses=responses(401, 404),
    )
    async def run_datasource_node(self, dataset_id: uuid.UUID, node_id: str) -> None:
        """Refused: 400 `pipeline_not_supported`."""
        raise PipelineNotSupported()

    @post("/{dataset_id:uuid}/pipeline/run", status_code=200, responses=responses(401, 404))
    async def run_pipeline(self, dataset_id: uuid.UUID) -> None:
        """Refused: 400 `pipeline_not_supported`."""
        raise PipelineNotSupported()
