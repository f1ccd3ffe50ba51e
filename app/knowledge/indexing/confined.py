"""The indexing pipeline's untrusted parsing (extract, clean, split) in confined children of the worker's sandbox.

Each stage is one ``Sandbox.call`` (``app.knowledge.indexing.parsing``) with the indexing limits: a wall clock
(``SLUICE_INDEXING_TIMEOUT_SECONDS``) and a memory cap (``SLUICE_INDEXING_MEMORY_MB``) per child, and the file caps
of :class:`app.knowledge.indexing.extract.ParseLimits`. At most half of the sandbox's slots parse documents at once (one
at least), so a burst of uploads cannot hold every slot while code nodes and templates wait. Every failure is an
:class:`~app.knowledge.indexing.extract.ExtractError` with a message for the document's ``error``.
"""

from __future__ import annotations

import asyncio
from typing import Any

from app.knowledge.indexing.extract import MB, ExtractError, ParseLimits
from app.knowledge.indexing.parsing import CLEAN, EXTRACT, SPLIT, resolve
from app.knowledge.indexing.splitting import Chunk, ProcessRule
from app.sandbox.client import Sandbox
from app.sandbox.errors import (
    FunctionFailed,
    FunctionOutOfMemory,
    FunctionTimedOut,
    SandboxBusy,
    SandboxError,
)
from app.settings import Settings

#: a busy sandbox (its queue full) is asked again this many times, a second apart, before the document fails
BUSY_RETRIES = 30


class ConfinedParsing:
    def __init__(
        self, sandbox: Sandbox, limits: ParseLimits, *, timeout_seconds: float, memory_mb: int
    ) -> None:
        self.sandbox, self.limits = sandbox, limits
        self.timeout_seconds, self.memory_mb = timeout_seconds, memory_mb
        self._slots = asyncio.Semaphore(max(1, sandbox.config.max_workers // 2))

    @classmethod
    def from_settings(cls, sandbox: Sandbox, settings: Settings) -> ConfinedParsing:
        limits = ParseLimits(
            max_uncompressed_bytes=settings.indexing_max_uncompressed_mb * MB,
            max_compression_ratio=settings.indexing_max_compression_ratio,
            max_pages=settings.indexing_max_pages,
            max_paragraphs=settings.indexing_max_paragraphs,
            max_characters=settings.indexing_max_characters,
        )
        return cls(
            sandbox,
            limits,
            timeout_seconds=settings.indexing_timeout_seconds,
            memory_mb=settings.indexing_memory_mb,
        )

    async def extract(self, filename: str, data: bytes) -> str:
        limits = {field: getattr(self.limits, field) for field in ParseLimits.__dataclass_fields__}
        result = await self._call(EXTRACT, "parse", {"filename": filename, "data": data, "limits": limits})
        return str(result["text"])

    async def clean(self, text: str, rule: ProcessRule) -> str:
        rules = rule.pre_processing
        args = {
            "text": text,
            "remove_extra_spaces": rules.remove_extra_spaces,
            "remove_urls_emails": rules.remove_urls_emails,
        }
        return str((await self._call(CLEAN, "clean", args))["text"])

    async def split(self, text: str, rule: ProcessRule) -> list[tuple[Chunk, list[str], list[list[str]]]]:
        """Chunks, each with its keywords and its children's keywords."""
        result = await self._call(SPLIT, "split", {"text": text, "process_rule": rule.to_api()})
        chunks = []
        for span, keywords, children in result["chunks"]:
            chunk = Chunk(resolve(text, span), tuple(resolve(text, child) for child, _ in children))
            chunks.append((chunk, keywords, [child_keywords for _, child_keywords in children]))
        return chunks

    async def _call(self, function: str, stage: str, args: dict[str, Any]) -> dict[str, Any]:
        async with self._slots:
            try:
                result = await self._call_when_admitted(function, args)
            except FunctionTimedOut:
                raise ExtractError(
                    f"The document took longer than {self.timeout_seconds:g} s to {stage} and was stopped "
                    "(SLUICE_INDEXING_TIMEOUT_SECONDS)."
                ) from None
            except (FunctionOutOfMemory, MemoryFailed):
                raise ExtractError(
                    f"The document needed more than {self.memory_mb} MiB to {stage} and was stopped "
                    "(SLUICE_INDEXING_MEMORY_MB)."
                ) from None
            except SandboxError as exc:
                raise ExtractError(f"The document could not be processed: {exc.message.strip()}") from None
        if "error" in result:
            raise ExtractError(str(result["error"]))
        return result

    async def _call_when_admitted(self, function: str, args: dict[str, Any]) -> dict[str, Any]:
        for _ in range(BUSY_RETRIES):
            try:
                result: dict[str, Any] = await self.sandbox.call(
                    function, args, timeout=self.timeout_seconds, memory_mb=self.memory_mb
                )
                return result
            except SandboxBusy:
                await asyncio.sleep(1.0)
            except FunctionFailed as exc:
                if exc.exception_type == "MemoryError":
                    raise MemoryFailed() from None
                raise
        raise SandboxBusy()


class MemoryFailed(Exception):
    """The child raised MemoryError (its address-space limit) instead of being killed."""
