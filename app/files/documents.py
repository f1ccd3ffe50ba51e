"""The ``documents`` port: document text extraction for the ``document-extractor`` node.

Parsing untrusted files must not run on the worker's event loop. Today :class:`ThreadedDocuments` runs the pure
:func:`app.files.text_extraction.extract_or_error` in a small thread pool of its own (so runaway parses cannot
take the default executor from the rest of the worker) with caps on input bytes, output characters and the
time it waits. A thread cannot be killed: a parse that overruns its time keeps a pool thread busy until it ends.

TODO(lead): once ``app/sandbox`` lands, replace the ``run_in_executor`` call in :meth:`ThreadedDocuments.extract`
with ``Sandbox.call("app.files.text_extraction.extract_or_error", [content, extension, mime_type, max_chars],
timeout=..., memory_mb=...)``: the arguments and the result are plain data already.
"""

from __future__ import annotations

import asyncio
import concurrent.futures

from app.files.text_extraction import extract_or_error
from app.workflows.engine.errors import NodeRunError

MB = 1024 * 1024


class ThreadedDocuments:
    """``DocumentsPort`` on a bounded thread pool (interim; see the module docstring)."""

    def __init__(
        self,
        *,
        max_input_bytes: int,
        max_output_chars: int,
        timeout_seconds: float = 60.0,
        threads: int = 2,
    ) -> None:
        self.max_input_bytes = max_input_bytes
        self.max_output_chars = max_output_chars
        self.timeout_seconds = timeout_seconds
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=threads, thread_name_prefix="documents"
        )

    async def extract(self, *, content: bytes, extension: str | None, mime_type: str | None) -> str:
        if len(content) > self.max_input_bytes:
            limit = (
                f"{self.max_input_bytes // MB} MB"
                if self.max_input_bytes >= MB
                else f"{self.max_input_bytes} bytes"
            )
            raise NodeRunError(
                f"The file is larger than {limit} and cannot be extracted.", "TextExtractionError"
            )
        loop = asyncio.get_running_loop()
        call = loop.run_in_executor(
            self._pool, extract_or_error, content, extension, mime_type, self.max_output_chars
        )
        try:
            result = await asyncio.wait_for(call, self.timeout_seconds)
        except TimeoutError:
            raise NodeRunError(
                f"Text extraction took longer than {self.timeout_seconds:g} seconds.", "TextExtractionError"
            ) from None
        if "error" in result:
            raise NodeRunError(
                str(result["error"]), str(result.get("error_type") or "DocumentExtractorError")
            )
        return str(result["text"])

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
