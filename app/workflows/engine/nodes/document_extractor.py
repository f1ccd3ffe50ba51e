"""`document-extractor`: the text of a file, or of each file of a file list (nodes spec 7).

Output ``text``: a string for a single file, an array of strings (same order) for a list; null entries of a list
are dropped and an empty list gives ``[]``. The bytes come from the ``files`` port (``FilePort.read``), the text
from the ``documents`` port (:class:`DocumentsPort`, parsing in a confined worker). Failures are Dify's
messages: a missing variable, a variable that is not a file, a download error, an unsupported type, or the
extractor's own error.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Protocol

import msgspec

from app.workflows.engine.conditions import is_file
from app.workflows.engine.errors import NodeRunError
from app.workflows.engine.nodes.base import Node, NodeContext, NodeResult, convert, selector


class DocumentsPort(Protocol):
    """Extracts a document's text where a hostile file cannot hurt the worker."""

    #: the largest file (bytes) the port accepts; the node reads at most this much
    max_input_bytes: int

    async def extract(self, *, content: bytes, extension: str | None, mime_type: str | None) -> str:
        """The text (extension first, MIME type second); raises NodeRunError with Dify's message."""
        ...


class DocumentExtractorConfig(msgspec.Struct, kw_only=True):
    variable_selector: list[str] = msgspec.field(default_factory=list)
    is_array_file: bool = False


class DocumentExtractorNode(Node):
    type = "document-extractor"
    performs_io: ClassVar[bool] = True

    def configure(self, data: Mapping[str, Any]) -> None:
        config = convert(data, DocumentExtractorConfig, self)
        found = selector(config.variable_selector)
        if found is None:
            raise self.fail("variable_selector is required")
        self.variable_selector: list[str] = found

    async def run(self, ctx: NodeContext) -> NodeResult:
        path = self.variable_selector
        sentinel = object()
        value = ctx.pool.get(path, sentinel)
        if value is sentinel:
            raise NodeRunError(f"File variable not found for selector: {path}", "DocumentExtractorError")
        if value and not (is_file(value) or (isinstance(value, list) and all(map(_file_or_empty, value)))):
            raise NodeRunError(f"Variable {path} is not an ArrayFileSegment", "DocumentExtractorError")
        inputs = {"variable_selector": path}
        if isinstance(value, list):
            value = [item for item in value if item]
        documents = value if isinstance(value, list) else [value] if value else []
        process_data = {"documents": documents}
        if not value:
            return NodeResult(inputs=inputs, process_data=process_data, outputs={"text": []})
        if isinstance(value, list):
            texts = [await self._text(ctx, file) for file in value]
            return NodeResult(inputs=inputs, process_data=process_data, outputs={"text": texts})
        return NodeResult(
            inputs=inputs, process_data=process_data, outputs={"text": await self._text(ctx, value)}
        )

    async def _text(self, ctx: NodeContext, file: Mapping[str, Any]) -> str:
        files, documents = ctx.ports.files, ctx.ports.documents
        if files is None or documents is None:
            raise NodeRunError(
                "document extraction is not available in this process", "DocumentExtractorError"
            )
        try:
            content = await files.read(ctx.run, file, max_bytes=documents.max_input_bytes)
        except NodeRunError:
            raise
        except Exception as error:  # the port's own errors: not found, too large, remote refused...
            raise NodeRunError(f"Error downloading file: {error}", "FileDownloadError") from None
        text: str = await documents.extract(
            content=content, extension=file.get("extension") or None, mime_type=file.get("mime_type") or None
        )
        return text


def _file_or_empty(item: Any) -> bool:
    return item is None or is_file(item)
