"""File references in a run request (chatflow spec 5.3): the mappings in ``files`` (-> ``sys.files``) and in
``file``/``file-list`` inputs become Dify file dicts (5.4), checked before the run is created.

``local_file`` (and ``tool_file``) name a stored file that must be in the app's workspace, of this app, and
created by the same end user (``user``); anything else is "Invalid upload file", whatever the reason, so a
client cannot tell another user's file from a missing one. ``remote_url`` is probed through the guarded client
(:mod:`app.files.remote`). The allowed types, extensions, methods and counts come from the start variable or
from ``features.file_upload`` exactly as in Dify's ``file_factory`` (``is_file_valid_with_config``), except that
a mapping's ``type`` that contradicts the detected type is not an error (the given type wins; Dify refuses it
on the Service API only for ``files``).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import InvalidParam
from app.files import policy
from app.files.remote import NO_REMOTE_FILES, RemoteFiles, remote_extension, remote_file_info
from app.files.signing import FileSigner
from db.models import App, UploadFile

FILE_IDENTITY = "__dify__file__"
#: Mappings one request may carry in ``files`` and all file inputs together (a guard, not a Dify rule).
MAX_MAPPINGS = 1000
DEFAULT_NUMBER_LIMIT = 3


def file_dict(
    upload: UploadFile,
    signer: FileSigner,
    *,
    file_type: str | None = None,
    transfer_method: str = "local_file",
    mapping_id: Any = None,
) -> dict[str, Any]:
    """The Dify file dict of a stored file, with a freshly signed ``url``."""
    url = signer.url(upload.id)
    return {
        "dify_model_identity": FILE_IDENTITY,
        "id": mapping_id,
        "tenant_id": str(upload.workspace_id),
        "type": file_type or policy.detect_type(extension=upload.extension, mime_type=upload.mime_type),
        "transfer_method": transfer_method,
        "remote_url": url if transfer_method == "remote_url" else None,
        "related_id": str(upload.id),
        "filename": upload.name,
        "extension": f".{upload.extension}" if upload.extension else None,
        "mime_type": upload.mime_type,
        "size": upload.size,
        "url": url,
    }


@dataclass(frozen=True)
class FileRules:
    """Dify's ``FileUploadConfig``: what files a start variable (or ``sys.files``) accepts."""

    allowed_types: Sequence[Any] = ()
    allowed_extensions: Sequence[Any] | None = ()
    allowed_methods: Sequence[Any] = ()
    image_methods: Sequence[Any] = ()
    image_limit: int | None = None
    number_limit: int = 0

    @classmethod
    def of_variable(cls, variable: Any) -> FileRules:
        return cls(
            allowed_types=list(variable.allowed_file_types or []),
            allowed_extensions=list(variable.allowed_file_extensions or []),
            allowed_methods=list(variable.allowed_file_upload_methods or []),
        )

    @classmethod
    def of_features(cls, dsl: Mapping[str, Any]) -> FileRules | None:
        """From the workflow's ``features.file_upload``; None (anything goes) when it is not enabled."""
        workflow = dsl.get("workflow") if isinstance(dsl, Mapping) else None
        features = (workflow or {}).get("features") if isinstance(workflow, Mapping) else None
        upload = (features or {}).get("file_upload") if isinstance(features, Mapping) else None
        if not isinstance(upload, Mapping) or not upload.get("enabled"):
            return None
        methods = _list(upload.get("allowed_file_upload_methods"))
        limit = upload.get("number_limits", DEFAULT_NUMBER_LIMIT)
        return cls(
            allowed_types=_list(upload.get("allowed_file_types")),
            allowed_extensions=_list(upload.get("allowed_file_extensions")),
            allowed_methods=methods,
            image_methods=methods,
            image_limit=_int(limit, DEFAULT_NUMBER_LIMIT),
            number_limit=_int(upload.get("number_limits"), 0),
        )

    def allows(self, input_type: Any, extension: str, method: str) -> bool:
        """Dify's ``is_file_valid_with_config``, rule for rule."""
        if method == "tool_file":
            return True
        allowed = list(self.allowed_types)
        custom_allowed = "custom" in allowed
        type_allowed = not allowed or input_type in allowed
        if not type_allowed and not custom_allowed:
            return False
        in_custom_bucket = input_type == "custom" or not type_allowed
        if (
            in_custom_bucket
            and self.allowed_extensions is not None
            and not _extension_in(extension, self.allowed_extensions)
        ):
            return False
        if input_type == "image":
            return not (self.image_methods and method not in self.image_methods)
        return not (self.allowed_methods and method not in self.allowed_methods)


def _list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else []


def _int(value: Any, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _dotted(extension: Any) -> str:
    text = str(extension).strip().lower()
    return "" if not text else text if text.startswith(".") else f".{text}"


def _extension_in(extension: str, whitelist: Sequence[Any]) -> bool:
    wanted = _dotted(extension)
    return bool(wanted) and wanted in {_dotted(e) for e in whitelist}


def is_listed_mapping(mapping: Any) -> bool:
    """Dify's ``_is_valid_mapping``: in lists, mappings without a transfer method (or a remote URL without its
    ``url``) are dropped silently."""
    if not isinstance(mapping, Mapping) or not mapping or not mapping.get("transfer_method"):
        return False
    return not (
        mapping.get("transfer_method") == "remote_url"
        and not (mapping.get("url") or mapping.get("remote_url"))
    )


def _record_id(mapping: Mapping[str, Any], key: str) -> str | None:
    for name in (key, "related_id"):
        value = mapping.get(name)
        if isinstance(value, str) and value:
            return value
    return None


def _parsed_id(raw: str) -> uuid.UUID:
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise InvalidParam("Invalid upload file id format") from None


class FileResolver:
    """Turns the mappings of one request into file dicts: one query for every stored file they name."""

    def __init__(
        self,
        session: AsyncSession,
        app: App,
        user: str,
        signer: FileSigner,
        remote: RemoteFiles = NO_REMOTE_FILES,
    ) -> None:
        self.session, self.app, self.user, self.signer, self.remote = session, app, user, signer, remote
        self._rows: dict[uuid.UUID, UploadFile] = {}

    async def load(self, mappings: Sequence[Any]) -> None:
        """Fetch the stored files all these mappings name (only the ones this end user may use)."""
        ids: set[uuid.UUID] = set()
        for mapping in mappings:
            if not isinstance(mapping, Mapping):
                continue
            for key in ("upload_file_id", "tool_file_id"):
                raw = _record_id(mapping, key)
                if raw:
                    try:
                        ids.add(uuid.UUID(raw))
                    except ValueError:
                        pass
        if not ids:
            return
        rows = await self.session.scalars(
            select(UploadFile).where(
                UploadFile.id.in_(ids),
                UploadFile.workspace_id == self.app.workspace_id,
                UploadFile.app_id == self.app.id,
                UploadFile.created_by == self.user,
            )
        )
        self._rows.update({row.id: row for row in rows})

    async def build(self, mapping: Mapping[str, Any], rules: FileRules | None) -> dict[str, Any]:
        """Dify's ``build_from_mapping``: one mapping to a file dict, or the 400 Dify gives."""
        method = mapping.get("transfer_method")
        if not method:
            raise InvalidParam("transfer_method is required in file mapping")
        if method not in policy.TRANSFER_METHODS:
            raise InvalidParam(f"'{method}' is not a valid FileTransferMethod")
        if method == "local_file":
            file = self._stored(mapping, "upload_file_id", "local_file")
        elif method == "tool_file":
            raw = _record_id(mapping, "tool_file_id")
            row = self._rows.get(_parsed_id(raw)) if raw else None
            if row is None or row.source != "tool":
                raise InvalidParam(f"ToolFile {raw} not found")
            file = file_dict(
                row, self.signer, file_type=self._type(mapping, row), transfer_method="tool_file"
            )
        elif method == "remote_url":
            file = await self._remote(mapping)
        else:
            raise InvalidParam(f"DatasourceFile {mapping.get('datasource_file_id')} not found")
        input_type = mapping["type"] if "type" in mapping else "custom"
        if rules is not None and not rules.allows(input_type, file.get("extension") or "", method):
            raise InvalidParam(f"File validation failed for file: {file.get('filename')}")
        return file

    async def build_list(self, mappings: Sequence[Any], rules: FileRules | None) -> list[dict[str, Any]]:
        """Dify's ``build_from_mappings``: invalid mappings dropped, then the image and total counts."""
        files = [await self.build(m, rules) for m in mappings if is_listed_mapping(m)]
        if rules is not None and rules.image_limit is not None:
            images = sum(1 for f in files if f["type"] == "image")
            if images > rules.image_limit:
                raise InvalidParam(f"Number of image files exceeds the maximum limit {rules.image_limit}")
        if rules is not None and rules.number_limit and len(files) > rules.number_limit:
            raise InvalidParam(f"Number of files exceeds the maximum limit {rules.number_limit}")
        return files

    def _stored(self, mapping: Mapping[str, Any], key: str, method: str) -> dict[str, Any]:
        raw = _record_id(mapping, key)
        if not raw:
            raise InvalidParam("Invalid upload file id")
        row = self._rows.get(_parsed_id(raw))
        if row is None or row.source != "upload":
            raise InvalidParam("Invalid upload file")
        return file_dict(
            row,
            self.signer,
            file_type=self._type(mapping, row),
            transfer_method=method,
            mapping_id=mapping.get("id"),
        )

    @staticmethod
    def _type(mapping: Mapping[str, Any], row: UploadFile) -> str:
        return resolve_type(
            mapping.get("type"), policy.detect_type(extension=row.extension, mime_type=row.mime_type)
        )

    async def _remote(self, mapping: Mapping[str, Any]) -> dict[str, Any]:
        if _record_id(mapping, "upload_file_id"):
            return self._stored(mapping, "upload_file_id", "remote_url")
        url = mapping.get("url") or mapping.get("remote_url")
        if not url or not isinstance(url, str):
            raise InvalidParam("Invalid file url")
        if not url.startswith(("http://", "https://")) or len(url) > 2048:
            raise InvalidParam("Invalid file url")
        head = await self.remote.probe(url)
        info = remote_file_info(url, head)
        extension = remote_extension(info)
        detected = policy.detect_type(extension=extension, mime_type=info.mime_type)
        return {
            "dify_model_identity": FILE_IDENTITY,
            "id": mapping.get("id"),
            "tenant_id": str(self.app.workspace_id),
            "type": resolve_type(mapping.get("type"), detected),
            "transfer_method": "remote_url",
            "remote_url": url,
            "related_id": None,
            "filename": info.filename,
            "extension": extension,
            "mime_type": info.mime_type,
            "size": info.size,
            "url": url,
        }


def resolve_type(specified: Any, detected: str) -> str:
    """A given type other than ``custom`` wins; otherwise the detected one."""
    if specified and specified != "custom":
        if specified not in policy.FILE_TYPES:
            raise InvalidParam(f"'{specified}' is not a valid FileType")
        return str(specified)
    return detected


def count_mappings(values: Iterator[Any]) -> int:
    return sum(len(v) if isinstance(v, list) else 1 for v in values)
