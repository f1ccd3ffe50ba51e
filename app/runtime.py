"""Turning settings read from the environment into settings a process can run with.

:func:`resolve` starts (or adopts) the embedded PostgreSQL when ``DATABASE_URL`` is unset, and in embedded mode
makes sure an admin token and a secret key exist (generated once, kept in ``<data_dir>/admin-token`` and
``<data_dir>/secret-key``). Entry points call it once; nothing here runs at import time. With DATABASE_URL set,
secrets come from the environment only: processes on several machines must share one secret key, so none is
invented per machine.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import msgspec

from app.settings import Settings
from db import embedded


def admin_token_file(settings: Settings) -> Path:
    return settings.data_dir.resolve() / "admin-token"


def resolve(settings: Settings) -> Settings:
    changes: dict[str, object] = {}
    if settings.database_url is None:
        changes["database_url"] = embedded.ensure_running(settings.data_dir)
        changes["embedded_database"] = True
        if settings.admin_token is None:
            changes["admin_token"] = _stored_secret(admin_token_file(settings), "sluice-admin-")
        if settings.secret_key is None:
            changes["secret_key"] = _stored_secret(settings.data_dir.resolve() / "secret-key", "")
    return msgspec.structs.replace(settings, **changes) if changes else settings


def _stored_secret(path: Path, prefix: str) -> str:
    """A secret generated once and kept in the data dir (embedded mode only)."""
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    token = prefix + secrets.token_urlsafe(32)
    # O_EXCL: when two processes start at once, one writes and both read the same token.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    return token
