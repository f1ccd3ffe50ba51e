"""``POST /v1/datasets/{id}/retrieve`` (alias ``/hit-testing``): search one dataset (dataset key)."""

from __future__ import annotations

import uuid

from litestar import Controller, post
from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import responses
from app.knowledge.datasets import services
from app.knowledge.retrieval.model import parse_retrieval_model
from app.knowledge.retrieval.schemas import QueryOut, Record, RetrieveRequest, RetrieveResponse
from app.knowledge.retrieval.services import Retriever
from app.tenancy.services import KeyContext


class RetrieveController(Controller):
    path = "/v1/datasets/{dataset_id:uuid}"
    tags = ["service api: knowledge"]

    @post(["/retrieve", "/hit-testing"], status_code=200, responses=responses(400, 401, 404))
    async def retrieve(
        self,
        retriever: Retriever,
        db_session: AsyncSession,
        key: KeyContext,
        dataset_id: uuid.UUID,
        data: RetrieveRequest,
    ) -> RetrieveResponse:
        """Search the dataset; omitted settings come from the dataset's own ``retrieval_model``."""
        dataset = await services.get_dataset(db_session, key.workspace_id, dataset_id)
        model = data.retrieval_model or parse_retrieval_model(dataset.retrieval_model)
        hits = await retriever.retrieve(db_session, [dataset], data.query, model)
        return RetrieveResponse(query=QueryOut(content=data.query), records=[Record.of(h) for h in hits])
