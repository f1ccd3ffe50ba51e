"""The indexing pipeline of one document: parse, clean, split, embed, store. Run by the ``index_document`` job.

Each stage commits its status (and timestamp) so ``indexing-status`` shows progress while it runs. Crash safety
comes from where the work is committed:

- parse, clean and split run in confined children (``app.knowledge.indexing.confined``: time and memory limits, file
  caps), never on the worker's event loop; their result is committed in ONE transaction that replaces the
  document's segments (unique ``(document_id, position)``) and moves it to ``indexing``. A job killed before
  that commit starts again from the source; one killed after it never splits again. While a child works, the
  job looks at the document every ``WATCH_SECONDS``: paused, deleted or re-indexed (a new generation), the
  child is killed at once and the job stops.
- embedding walks the rows that have no vector yet, a batch at a time; each batch's vectors are written in one
  statement and committed with the batch's status. A job killed mid-way loses at most one batch of work and
  the retried job (stalled-job recovery) continues with the rows still missing a vector, so nothing is embedded
  twice or missed.
- every transaction re-checks the document's ``indexing_generation`` and pause flag with a compare-and-set:
  a job for an older generation (the document was updated) or for a paused document stops without writing.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Awaitable, Sequence
from typing import Any, TypeVar

import structlog
from sqlalchemy import delete, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from uuid_utils.compat import uuid7

from app.clock import utcnow
from app.knowledge.embeddings import vectors
from app.knowledge.embeddings.embedders import Embedder, EmbeddingError
from app.knowledge.embeddings.providers import Embedders
from app.knowledge.indexing.chunk_text import estimate_tokens, text_fields
from app.knowledge.indexing.confined import ConfinedParsing
from app.knowledge.indexing.extract import ExtractError
from app.knowledge.indexing.lifecycle import ACTIVE_STATUSES
from app.knowledge.indexing.splitting import Chunk, InvalidProcessRule, ProcessRule
from db.models import ChildChunk, Dataset, Document, Segment, UploadFile

log = structlog.get_logger()

#: Rows embedded per transaction: big enough to batch the model and the write, small enough that a crash
#: or a pause loses little work and progress moves visibly.
EMBED_BATCH = 64
#: How often a job whose parsing runs in a child checks that the document still wants it (pause, delete).
WATCH_SECONDS = 0.5

T = TypeVar("T")


class Stale(Exception):
    """The document changed (new generation, paused, deleted): this job has nothing more to do."""


async def _advance(
    session: AsyncSession,
    document_id: uuid.UUID,
    generation: int,
    from_statuses: Sequence[str],
    **values: Any,
) -> None:
    """Compare-and-set the document (same generation, not paused, in one of ``from_statuses``) or raise Stale."""
    result = await session.execute(
        update(Document)
        .where(
            Document.id == document_id,
            Document.indexing_generation == generation,
            Document.is_paused.is_(False),
            Document.indexing_status.in_(from_statuses),
        )
        .values(**values)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise Stale()


class DocumentIndexer:
    """Indexes one generation of one document; ``run`` is idempotent and resumable."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        embedders: Embedders,
        parsing: ConfinedParsing,
        document_id: uuid.UUID,
        generation: int,
    ) -> None:
        self.sessions, self.embedders, self.parsing = sessions, embedders, parsing
        self.document_id, self.generation = document_id, generation
        self.started = 0.0  # perf_counter() when run() began: indexing_latency is measured from it

    async def run(self) -> None:
        self.started = time.perf_counter()
        try:
            async with self.sessions() as session:
                document = await session.get(Document, self.document_id)
                if document is None or document.indexing_generation != self.generation:
                    return
                if document.is_paused or document.indexing_status in ("completed", "error"):
                    return
                dataset = await session.get(Dataset, document.dataset_id)
                assert dataset is not None
                embedder = self.embedders.for_dataset(dataset)
                split_done = document.splitting_completed_at is not None
                hierarchical = document.doc_form == "hierarchical_model"
            if not split_done:
                await self._split(embedder)  # an economy document is complete after this
            if embedder is not None:
                await self._embed_all(embedder, hierarchical)
                await self._finish()
        except Stale:
            log.info("indexing_stopped", document_id=str(self.document_id), generation=self.generation)
        except (ExtractError, InvalidProcessRule, EmbeddingError) as exc:
            await self._fail(getattr(exc, "message", None) or str(exc))
        except Exception as exc:
            log.exception("indexing_failed", document_id=str(self.document_id))
            await self._fail(f"Indexing failed: {type(exc).__name__}: {exc}")

    # -- parse, clean, split ---------------------------------------------------------------------------------

    async def _split(self, embedder: Embedder | None) -> None:
        early = ("waiting", "parsing", "cleaning", "splitting")
        async with self.sessions() as session, session.begin():
            await _advance(
                session,
                self.document_id,
                self.generation,
                early,
                indexing_status="parsing",
                processing_started_at=utcnow(),
            )
            document = await session.get(Document, self.document_id)
            assert document is not None
            file = await session.get(UploadFile, document.upload_file_id) if document.upload_file_id else None
            if file is None:
                raise ExtractError("The document's file is missing.")
            name, data = (
                file.name,
                await session.scalar(select(UploadFile.content).where(UploadFile.id == file.id)),
            )
            rule = ProcessRule.from_api(
                document.process_rule.get("mode", "automatic"), document.process_rule.get("rules")
            )
            hierarchical = document.doc_form == "hierarchical_model"
            dataset_id = document.dataset_id
        raw = await self._while_wanted(self.parsing.extract(name, data or b""))
        del data
        await self._stage("cleaning", parsing_completed_at=utcnow())
        cleaned = await self._while_wanted(self.parsing.clean(raw, rule))
        del raw
        await self._stage("splitting", cleaning_completed_at=utcnow())
        chunks = await self._while_wanted(self.parsing.split(cleaned, rule))
        del cleaned
        if not chunks:
            raise ExtractError("The document has no text to index after cleaning.")
        await self._store_chunks(dataset_id, chunks, hierarchical, embedder)

    async def _while_wanted(self, work: Awaitable[T]) -> T:
        """``work`` (a child's parsing), cancelled (the child killed) as soon as the document is paused,
        deleted or re-indexed; then Stale."""
        task = asyncio.ensure_future(work)
        try:
            while True:
                done, _ = await asyncio.wait({task}, timeout=WATCH_SECONDS)
                if done:
                    return task.result()
                if not await self._still_wanted():
                    log.info("indexing_child_stopped", document_id=str(self.document_id))
                    raise Stale()
        finally:
            if not task.done():
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task

    async def _still_wanted(self) -> bool:
        async with self.sessions() as session:
            row = (
                await session.execute(
                    select(Document.indexing_generation, Document.is_paused).where(
                        Document.id == self.document_id
                    )
                )
            ).first()
        return row is not None and row.indexing_generation == self.generation and not row.is_paused

    async def _stage(self, status: str, **values: Any) -> None:
        async with self.sessions() as session, session.begin():
            await _advance(
                session,
                self.document_id,
                self.generation,
                ("parsing", "cleaning", "splitting"),
                indexing_status=status,
                **values,
            )

    async def _store_chunks(
        self,
        dataset_id: uuid.UUID,
        chunks: list[tuple[Chunk, list[str], list[list[str]]]],
        hierarchical: bool,
        embedder: Embedder | None,
    ) -> None:
        """Replace the document's segments with ``chunks`` (each with its keywords and its children's) and move
        the document to ``indexing``, in one transaction."""
        now = utcnow()
        done = embedder is None  # economy: full text and keywords are ready as soon as the rows exist
        segments: list[dict[str, Any]] = []
        children: list[dict[str, Any]] = []
        for position, (chunk, keywords, child_keywords) in enumerate(chunks, start=1):
            if position % 1000 == 0:
                await asyncio.sleep(0)  # many rows: let the event loop serve others in between
            segment_id = uuid7()
            segments.append(
                {
                    "id": segment_id,
                    "dataset_id": dataset_id,
                    "document_id": self.document_id,
                    "position": position,
                    **text_fields(chunk.content, keywords),
                    "tokens": estimate_tokens(len(chunk.content)),
                    "status": "completed" if done else "indexing",
                    "indexing_at": now,
                    "completed_at": now if done else None,
                    "created_at": now,
                    "updated_at": now,
                }
            )
            pairs = zip(chunk.children, child_keywords, strict=True) if hierarchical else ()
            for child_position, (child, child_words) in enumerate(pairs, start=1):
                children.append(
                    {
                        "id": uuid7(),
                        "dataset_id": dataset_id,
                        "document_id": self.document_id,
                        "segment_id": segment_id,
                        "position": child_position,
                        **text_fields(child, child_words),
                        "type": "automatic",
                        "created_at": now,
                        "updated_at": now,
                    }
                )
        words = sum(len(chunk.content) for chunk, _, _ in chunks)
        async with self.sessions() as session, session.begin():
            await _advance(
                session,
                self.document_id,
                self.generation,
                ("splitting",),
                indexing_status="completed" if done else "indexing",
                splitting_completed_at=now,
                word_count=words,
                tokens=estimate_tokens(words),
                **(
                    {"completed_at": now, "indexing_latency": time.perf_counter() - self.started}
                    if done
                    else {}
                ),
            )
            await session.execute(delete(Segment).where(Segment.document_id == self.document_id))
            for start in range(0, len(segments), 1000):
                await session.execute(insert(Segment), segments[start : start + 1000])
            for start in range(0, len(children), 1000):
                await session.execute(insert(ChildChunk), children[start : start + 1000])

    # -- embed -----------------------------------------------------------------------------------------------

    async def _embed_all(self, embedder: Embedder, hierarchical: bool) -> None:
        table: vectors.VectorTable = "child_chunks" if hierarchical else "segments"
        model = ChildChunk if hierarchical else Segment
        while True:
            async with self.sessions() as session:
                rows = (
                    await session.execute(
                        select(model.id, model.content)
                        .where(model.document_id == self.document_id, model.embedding_space_id.is_(None))
                        .order_by(
                            *((ChildChunk.segment_id,) if hierarchical else ()), model.position
                        )  # ids are UUIDv7
                        .limit(EMBED_BATCH)
                    )
                ).all()
            if not rows:
                return
            async with self.sessions() as session, session.begin():
                # Lock the document row for the batch: a pause or an update commits before or after it.
                await _advance(session, self.document_id, self.generation, ("indexing",), updated_at=utcnow())
                await vectors.embed_rows(session, embedder, table, [(r.id, r.content) for r in rows])
                await self._mark_completed(session, hierarchical, [r.id for r in rows])

    async def _mark_completed(self, session: AsyncSession, hierarchical: bool, ids: list[uuid.UUID]) -> None:
        now = utcnow()
        if not hierarchical:
            await session.execute(
                update(Segment).where(Segment.id.in_(ids)).values(status="completed", completed_at=now)
            )
            return
        # A parent is complete when none of its children is still waiting for a vector.
        await session.execute(
            text(
                "UPDATE segments AS s SET status = 'completed', completed_at = :now "
                "WHERE s.document_id = :document_id AND s.status <> 'completed' AND NOT EXISTS ("
                "  SELECT 1 FROM child_chunks c WHERE c.segment_id = s.id AND c.embedding_space_id IS NULL)"
            ),
            {"now": now, "document_id": self.document_id},
        )

    # -- finish ----------------------------------------------------------------------------------------------

    async def _finish(self) -> None:
        async with self.sessions() as session, session.begin():
            await _advance(
                session,
                self.document_id,
                self.generation,
                ("indexing",),
                indexing_status="completed",
                completed_at=utcnow(),
                indexing_latency=time.perf_counter() - self.started,
            )
            # Parents without children (empty after splitting) have nothing to wait for.
            await session.execute(
                update(Segment)
                .where(Segment.document_id == self.document_id, Segment.status != "completed")
                .values(status="completed", completed_at=utcnow())
            )

    async def abandon(self, message: str) -> bool:
        """End this generation in ``error`` (a job that keeps killing its worker), unless it is finished,
        paused, deleted or superseded; True when it did."""
        async with self.sessions() as session, session.begin():
            result = await session.execute(
                update(Document)
                .where(
                    Document.id == self.document_id,
                    Document.indexing_generation == self.generation,
                    Document.is_paused.is_(False),
                    Document.indexing_status.in_(ACTIVE_STATUSES),
                )
                .values(indexing_status="error", error=message[:2000], stopped_at=utcnow())
            )
        done = bool(result.rowcount)  # type: ignore[attr-defined]
        if done:
            log.warning("indexing_abandoned", document_id=str(self.document_id), error=message)
        return done

    async def _fail(self, message: str) -> None:
        async with self.sessions() as session, session.begin():
            await session.execute(
                update(Document)
                .where(Document.id == self.document_id, Document.indexing_generation == self.generation)
                .values(indexing_status="error", error=message[:2000], stopped_at=utcnow())
            )
        log.warning("indexing_error", document_id=str(self.document_id), error=message)
