"""The ``documents`` port: document text extraction for the ``document-extractor`` node, in a confined child.

Parsing an uploaded file runs :func:`app.files.text_extraction.extract_or_error` through ``Sandbox.call``: a
fresh child of the code sandbox's runner, with no network, no writable file system, no secrets, a wall-clock
kill and a memory limit, so a hostile PDF or DOCX can neither stall nor bloat the worker. Input bytes are
capped before anything is sent; the text that comes back is capped in the child.
"""

from __future__ import annotations

from app.sandbox.client import Sandbox
from app.sandbox.errors import SandboxError
from app.workflows.engine.errors import NodeRunError

MB = 1024 * 1024
EXTRACT = "files.extract_text"
#: Parsing budget of one file (seconds of wall clock, MiB of memory for the child).
EXTRACT_TIMEOUT_SECONDS = 60.0
EXTRACT_MEMORY_MB = 512


class SandboxDocuments:
    """``DocumentsPort`` on the worker's sandbox."""

    def __init__(
        self,
        sandbox: Sandbox,
        *,
        max_input_bytes: int,
        max_output_chars: int,
        timeout_seconds: float = EXTRACT_TIMEOUT_SECONDS,
        memory_mb: int = EXTRACT_MEMORY_MB,
    ) -> None:
        self.sandbox = sandbox
        self.max_input_bytes, self.max_output_chars = max_input_bytes, max_output_chars
        self.timeout_seconds, self.memory_mb = timeout_seconds, memory_mb

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
        try:
            result = await self.sandbox.call(
                EXTRACT,
                {
                    "content": content,
                    "extension": extension,
                    "mime_type": mime_type,
                    "max_chars": self.max_output_chars,
                },
                timeout=self.timeout_seconds,
                memory_mb=self.memory_mb,
            )
        except SandboxError as exc:
            raise NodeRunError(
                f"Failed to extract text: {exc.message.strip()}", "TextExtractionError"
            ) from None
        if "error" in result:
            raise NodeRunError(
                str(result["error"]), str(result.get("error_type") or "DocumentExtractorError")
            )
        return str(result["text"])
