"""Annotation Service API (app key): ``/v1/apps/annotations`` CRUD and ``/v1/apps/annotation-reply/{action}`` with
its job status, in Dify's shapes (``controllers/service_api/app/annotation.py``)."""

from __future__ import annotations

import uuid
from typing import Annotated

import msgspec
from litestar import Controller, delete, get, post, put
from litestar.params import Parameter
from sqlalchemy.ext.asyncio import AsyncSession

from app.annotations import services
from app.errors import responses
from app.knowledge.embeddings.providers import Embedders
from app.schemas import NO_NUL, Page, PageNumber, text_field, unix
from app.tenancy.services import AppKey
from db.models import Annotation, AnnotationReplyJob

Text = Annotated[str, text_field(0, 100_000)]
ModelName = Annotated[str, text_field(0, 255)]


class AnnotationIn(msgspec.Struct, kw_only=True):
    question: Text
    answer: Text


class AnnotationOut(msgspec.Struct):
    id: uuid.UUID
    question: str
    answer: str
    hit_count: int
    created_at: int | None

    @classmethod
    def of(cls, a: Annotation) -> AnnotationOut:
        return cls(
            id=a.id,
            question=a.question,
            answer=a.answer,
            hit_count=a.hit_count,
            created_at=unix(a.created_at),
        )


class ReplySettingsIn(msgspec.Struct, kw_only=True):
    score_threshold: Annotated[float, msgspec.Meta(ge=0.0, le=1.0)]
    embedding_provider_name: ModelName
    embedding_model_name: ModelName


class JobOut(msgspec.Struct):
    job_id: uuid.UUID
    job_status: str


class JobStatusOut(msgspec.Struct):
    job_id: uuid.UUID
    job_status: str
    error_msg: str

    @classmethod
    def of(cls, job: AnnotationReplyJob) -> JobStatusOut:
        return cls(
            job_id=job.id, job_status=job.status, error_msg=job.error_msg if job.status == "error" else ""
        )


class AnnotationController(Controller):
    path = "/v1/apps"
    tags = ["service api: annotations"]

    @get("/annotations", responses=responses(400, 401))
    async def list_annotations(
        self,
        db_session: AsyncSession,
        key: AppKey,
        page: PageNumber = 1,
        limit: Annotated[int, Parameter(ge=1)] = 20,
        keyword: Annotated[str | None, Parameter(max_length=255, pattern=NO_NUL)] = None,
    ) -> Page[AnnotationOut]:
        """The app's annotations, newest first; `keyword` filters question and answer (limit capped at 100)."""
        limit = min(limit, 100)
        rows, total = await services.list_annotations(db_session, key.app_id, page, limit, keyword)
        return Page.of([AnnotationOut.of(a) for a in rows], page, limit, total)

    @post("/annotations", status_code=201, responses=responses(400, 401))
    async def create_annotation(
        self, db_session: AsyncSession, embedders: Embedders, key: AppKey, data: AnnotationIn
    ) -> AnnotationOut:
        annotation = await services.create_annotation(
            db_session, embedders, key.app_id, data.question, data.answer
        )
        return AnnotationOut.of(annotation)

    @put("/annotations/{annotation_id:uuid}", responses=responses(400, 401, 404))
    async def update_annotation(
        self,
        db_session: AsyncSession,
        embedders: Embedders,
        key: AppKey,
        annotation_id: uuid.UUID,
        data: AnnotationIn,
    ) -> AnnotationOut:
        annotation = await services.update_annotation(
            db_session, embedders, key.app_id, annotation_id, data.question, data.answer
        )
        return AnnotationOut.of(annotation)

    @delete("/annotations/{annotation_id:uuid}", responses=responses(401, 404))
    async def delete_annotation(
        self, db_session: AsyncSession, key: AppKey, annotation_id: uuid.UUID
    ) -> None:
        await services.delete_annotation(db_session, key.app_id, annotation_id)

    @post("/annotation-reply/{action:str}", status_code=200, responses=responses(400, 401))
    async def configure_reply(
        self, db_session: AsyncSession, key: AppKey, action: str, data: ReplySettingsIn
    ) -> JobOut:
        """Enable or disable annotation reply; the work runs as a job (`waiting` until the worker takes it)."""
        job = await services.start_reply_job(
            db_session,
            key.app_id,
            action,
            data.score_threshold,
            data.embedding_provider_name,
            data.embedding_model_name,
        )
        return JobOut(job_id=job.id, job_status=job.status)

    @get("/annotation-reply/{action:str}/status/{job_id:uuid}", responses=responses(400, 401, 404))
    async def reply_status(
        self, db_session: AsyncSession, key: AppKey, action: str, job_id: uuid.UUID
    ) -> JobStatusOut:
        """The job's status: `waiting`, `processing`, `completed` or `error` (with `error_msg`)."""
        return JobStatusOut.of(await services.get_reply_job(db_session, key.app_id, action, job_id))
