"""The one call ``start_run`` makes for files: the request's ``files`` and its ``file``/``file-list`` inputs become
file dicts (or a 400 with Dify's message) before the run exists.

Dify's order: ``files`` first (``sys.files``, rules from ``features.file_upload``), then every single ``file``
input, then every ``file-list`` input (rules from the variable). The start node has already checked the shapes
(a mapping for ``file``, a list of mappings of at most ``max_length`` for ``file-list``).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import InvalidParam, NotFound
from app.files.references import MAX_MAPPINGS, FileResolver, FileRules
from app.files.remote import NO_REMOTE_FILES, RemoteFiles
from app.files.signing import FileSigner
from db.models import App

FILE_VARIABLE_TYPES = ("file", "file-list")


@dataclass(frozen=True)
class FileContext:
    """What resolving files needs besides the request: the signer of file links and the guarded remote client."""

    signer: FileSigner
    remote: RemoteFiles = NO_REMOTE_FILES


async def resolve_run_files(
    session: AsyncSession,
    context: FileContext,
    *,
    app_id: uuid.UUID,
    user: str,
    variables: Sequence[Any],
    dsl: Mapping[str, Any],
    inputs: Mapping[str, Any],
    files: Sequence[Any] | None,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The inputs with their file mappings replaced by file dicts, and ``sys.files``."""
    file_vars = [v for v in variables if v.type in FILE_VARIABLE_TYPES and inputs.get(v.variable) is not None]
    files = list(files or [])
    if not files and not file_vars:
        return dict(inputs), []
    mappings: list[Any] = list(files)
    for var in file_vars:
        value = inputs[var.variable]
        mappings.extend(value if isinstance(value, list) else [value])
    if len(mappings) > MAX_MAPPINGS:
        raise InvalidParam(f"Too many files in one request (at most {MAX_MAPPINGS}).")
    app = await session.get(App, app_id)
    if app is None:
        raise NotFound("App not found.")
    resolver = FileResolver(session, app, user, context.signer, context.remote)
    await resolver.load(mappings)
    system_files = await resolver.build_list(files, FileRules.of_features(dsl))
    resolved = dict(inputs)
    for var in file_vars:
        if var.type == "file":
            resolved[var.variable] = await resolver.build(inputs[var.variable], FileRules.of_variable(var))
    for var in file_vars:
        if var.type == "file-list":
            resolved[var.variable] = await resolver.build_list(
                inputs[var.variable], FileRules.of_variable(var)
            )
    return resolved, system_files
