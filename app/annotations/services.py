"""Annotations of an app and its annotation-reply setting; the enable/disable job; matching a query.

Dify keeps an app's annotations in a vector index that annotation reply enables (a background job that embeds
every annotation with the model the request names) and disables again. Here the vectors live on the rows
(``app_annotations.embedding``), written by :func:`run_reply_job` and by create/update while reply is enabled.

For the chat work: before running the flow of a chat turn, call ``await match_annotation(session, app_id,
query, embedders=...)``; a returned annotation answers the turn (its ``answer``), and :func:`record_hit` counts
it, as Dify's ``AnnotationReplyFeature`` does. None means: run the flow.
"""

from __future__ import annotations

import uuid

import structlog
from sqlalchemy import bindparam, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import InvalidParam, NotFound
from app.knowledge.embeddings.providers import Embedders
from db import queue
from db.models import Annotation, AnnotationReplyJob, AnnotationSetting

log = structlog.get_logger()

ACTIONS = ("enable", "disable")
#: Annotations embedded per batch by the enable job.
EMBED_BATCH = 64


class AnnotationNotFound(NotFound):
    """Annotation not found."""


class JobNotFound(InvalidParam):
    """The job does not exist."""


def _like(keyword: str) -> str:
    return "%" + keyword.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


async def list_annotations(
    session: AsyncSession, app_id: uuid.UUID, page: int, limit: int, keyword: str | None
) -> tuple[list[Annotation], int]:
    where = [Annotation.app_id == app_id]
    if keyword:
        pattern = _like(keyword)
        where.append(or_(Annotation.question.ilike(pattern), Annotation.answer.ilike(pattern)))
    total = await session.scalar(select(func.count()).select_from(Annotation).where(*where)) or 0
    rows = await session.scalars(
        select(Annotation)
        .where(*where)
        .order_by(Annotation.created_at.desc(), Annotation.id.desc())
        .offset((page - 1) * limit)
        .limit(limit)
    )
    return list(rows), int(total)


#: Built once: every chat turn reads it.
_REPLY_SETTING = select(AnnotationSetting).where(AnnotationSetting.app_id == bindparam("app_id"))


async def reply_setting(session: AsyncSession, app_id: uuid.UUID) -> AnnotationSetting | None:
    return await session.scalar(_REPLY_SETTING, {"app_id": app_id})


async def _embed_if_enabled(session: AsyncSession, embedders: Embedders, annotation: Annotation) -> None:
    setting = await reply_setting(session, annotation.app_id)
    if setting is None or not setting.enabled:
        return
    embedder = embedders.get(setting.embedding_provider_name, setting.embedding_model_name)
    vectors = await embedder.embed_documents([annotation.question])
    annotation.embedding, annotation.embedding_model = vectors[0], embedder.model


async def create_annotation(
    session: AsyncSession, embedders: Embedders, app_id: uuid.UUID, question: str, answer: str
) -> Annotation:
    annotation = Annotation(app_id=app_id, question=question, answer=answer, hit_count=0)
    await _embed_if_enabled(session, embedders, annotation)
    session.add(annotation)
    await session.flush()
    return annotation


async def get_annotation(session: AsyncSession, app_id: uuid.UUID, annotation_id: uuid.UUID) -> Annotation:
    annotation = await session.scalar(
        select(Annotation).where(Annotation.id == annotation_id, Annotation.app_id == app_id)
    )
    if annotation is None:
        raise AnnotationNotFound()
    return annotation


async def update_annotation(
    session: AsyncSession,
    embedders: Embedders,
    app_id: uuid.UUID,
    annotation_id: uuid.UUID,
    question: str,
    answer: str,
) -> Annotation:
    annotation = await get_annotation(session, app_id, annotation_id)
    changed = annotation.question != question
    annotation.question, annotation.answer = question, answer
    if changed:
        annotation.embedding = annotation.embedding_model = None
        await _embed_if_enabled(session, embedders, annotation)
    await session.flush()
    return annotation


async def delete_annotation(session: AsyncSession, app_id: uuid.UUID, annotation_id: uuid.UUID) -> None:
    await session.delete(await get_annotation(session, app_id, annotation_id))
    await session.flush()


async def start_reply_job(
    session: AsyncSession,
    app_id: uuid.UUID,
    action: str,
    score_threshold: float,
    embedding_provider_name: str,
    embedding_model_name: str,
) -> AnnotationReplyJob:
    """Record an enable/disable job and defer its run in the same transaction (``waiting`` until it runs)."""
    if action not in ACTIONS:
        raise InvalidParam("Unsupported annotation reply action")
    job = AnnotationReplyJob(
        app_id=app_id,
        action=action,
        status="waiting",
        error_msg="",
        score_threshold=score_threshold,
        embedding_provider_name=embedding_provider_name,
        embedding_model_name=embedding_model_name,
    )
    session.add(job)
    await session.flush()
    await queue.defer(session, queue.Task.RUN_ANNOTATION_REPLY_JOB, args={"job_id": str(job.id)})
    return job


async def get_reply_job(
    session: AsyncSession, app_id: uuid.UUID, action: str, job_id: uuid.UUID
) -> AnnotationReplyJob:
    job = await session.get(AnnotationReplyJob, job_id)
    if job is None or job.app_id != app_id or job.action != action:
        raise JobNotFound()
    return job


async def run_reply_job(session: AsyncSession, embedders: Embedders, job_id: uuid.UUID) -> None:
    """Apply one enable/disable job in the caller's transaction (the job commits it, so a client sees ``waiting``
    then ``completed`` or ``error``). Idempotent: a finished job is left as it is; a rerun redoes the work."""
    job = await session.get(AnnotationReplyJob, job_id, with_for_update=True)
    if job is None or job.status in ("completed", "error"):
        return
    job.status = "processing"
    try:
        async with session.begin_nested():  # a failure undoes the partial work, then is recorded on the job
            if job.action == "enable":
                await _enable(session, embedders, job)
            else:
                await _disable(session, job)
    except Exception as exc:  # the job reports any failure as Dify does: status error with its message
        log.warning("annotation_reply_job_failed", job_id=str(job.id), error=type(exc).__name__)
        job.status, job.error_msg = "error", str(exc) or type(exc).__name__
        return
    job.status = "completed"


async def _setting_for(session: AsyncSession, job: AnnotationReplyJob) -> AnnotationSetting:
    setting = await reply_setting(session, job.app_id)
    if setting is None:
        setting = AnnotationSetting(app_id=job.app_id, embedding_provider_name="", embedding_model_name="")
        session.add(setting)
    return setting


async def _enable(session: AsyncSession, embedders: Embedders, job: AnnotationReplyJob) -> None:
    provider, model = job.embedding_provider_name or "", job.embedding_model_name or ""
    embedder = embedders.get(provider, model)
    pending = select(Annotation).where(
        Annotation.app_id == job.app_id,
        or_(Annotation.embedding_model.is_(None), Annotation.embedding_model != embedder.model),
    )
    while batch := list(await session.scalars(pending.limit(EMBED_BATCH))):
        vectors = await embedder.embed_documents([a.question for a in batch])
        for annotation, vector in zip(batch, vectors, strict=True):
            annotation.embedding, annotation.embedding_model = vector, embedder.model
        await session.flush()
    setting = await _setting_for(session, job)
    setting.enabled = True
    setting.score_threshold = float(job.score_threshold if job.score_threshold is not None else 0.9)
    setting.embedding_provider_name, setting.embedding_model_name = provider, model


async def _disable(session: AsyncSession, job: AnnotationReplyJob) -> None:
    setting = await reply_setting(session, job.app_id)
    if setting is not None:
        setting.enabled = False
    await session.execute(
        update(Annotation).where(Annotation.app_id == job.app_id).values(embedding=None, embedding_model=None)
    )


async def match_annotation(
    session: AsyncSession, app_id: uuid.UUID, query: str, *, embedders: Embedders
) -> Annotation | None:
    """The app's annotation closest to ``query`` when reply is enabled and its cosine similarity reaches the
    app's score threshold; else None (run the flow). Dify embeds the query with the setting's model and takes the
    single best match (``AppAnnotationService``/``AnnotationReplyFeature``)."""
    setting = await reply_setting(session, app_id)
    if setting is None or not setting.enabled or not query.strip():
        return None
    embedder = embedders.get(setting.embedding_provider_name, setting.embedding_model_name)
    vector = await embedder.embed_query(query)
    distance = Annotation.embedding.cosine_distance(vector)
    row = (
        await session.execute(
            select(Annotation, distance)
            .where(Annotation.app_id == app_id, Annotation.embedding_model == embedder.model)
            .order_by(distance)
            .limit(1)
        )
    ).first()
    if row is None:
        return None
    annotation, found_distance = row
    score = 1.0 - float(found_distance)
    log.debug(
        "annotation_match", app_id=str(app_id), score=round(score, 4), threshold=setting.score_threshold
    )
    return annotation if score >= setting.score_threshold else None


async def record_hit(session: AsyncSession, annotation: Annotation) -> None:
    """Count a reply given by ``annotation`` (Dify's ``hit_count``)."""
    await session.execute(
        update(Annotation).where(Annotation.id == annotation.id).values(hit_count=Annotation.hit_count + 1)
    )
