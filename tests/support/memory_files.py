"""An in-memory ``FilePort`` for engine tests: files are Dify file dicts whose bytes live in a dict.

The real files subsystem (uploads, tool files, remote URLs) is built elsewhere; nodes only see the port.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from app.workflows.engine.nodes.base import RunInfo


class MemoryFiles:
    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {}
        self.saved: list[dict[str, Any]] = []

    def add(
        self, filename: str, content: bytes, mime_type: str = "application/octet-stream"
    ) -> dict[str, Any]:
        """A file as an upload would put it in the pool."""
        file_id = str(uuid.uuid4())
        self.blobs[file_id] = content
        return {
            "dify_model_identity": "__dify__file__",
            "id": file_id,
            "related_id": file_id,
            "type": "document",
            "transfer_method": "local_file",
            "filename": filename,
            "extension": "." + filename.rsplit(".", 1)[-1] if "." in filename else "",
            "mime_type": mime_type,
            "size": len(content),
            "url": None,
            "remote_url": None,
        }

    async def save(self, run: RunInfo, *, filename: str, mime_type: str, content: bytes) -> dict[str, Any]:
        file = self.add(filename, content, mime_type)
        file["transfer_method"] = "tool_file"
        self.saved.append(file)
        return file

    async def read(self, run: RunInfo, file: Mapping[str, Any], *, max_bytes: int) -> bytes:
        content = self.blobs.get(str(file.get("related_id") or file.get("id")))
        if content is None:
            raise FileNotFoundError(f"no file {file.get('id')}")
        if len(content) > max_bytes:
            raise ValueError(f"file is larger than {max_bytes} bytes")
        return content
