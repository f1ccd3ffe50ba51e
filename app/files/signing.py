"""Signed, short-lived file links: ``{FILES_URL}/files/{id}/file-preview?timestamp=&nonce=&sign=``.

The signature is Dify's: ``urlsafe_b64(HMAC-SHA256(SLUICE_SECRET_KEY, "file-preview|{id}|{timestamp}|{nonce}"))``;
a link is good for ``FILES_ACCESS_TIMEOUT`` seconds after ``timestamp``. Anyone holding a valid link may fetch the
file (that is what the link is for: ``<img src>``, a model provider downloading an image), so links are only ever
handed to the app key that may read the file anyway.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
import uuid
from collections.abc import Callable
from urllib.parse import urlencode

from app.files.errors import SigningKeyMissing
from app.settings import Settings


class FileSigner:
    """Signs and checks file links with the service's secret key."""

    def __init__(
        self,
        secret_key: str | None,
        base_url: str,
        timeout_seconds: int = 300,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._key = secret_key.encode() if secret_key else None
        self.base_url = base_url.rstrip("/")
        self.timeout_seconds = timeout_seconds
        self._clock = clock

    @classmethod
    def of(cls, settings: Settings) -> FileSigner:
        return cls(
            settings.secret_key, settings.files_url or settings.public_url, settings.files_access_timeout
        )

    def _sign(self, file_id: uuid.UUID | str, timestamp: str, nonce: str) -> str:
        if self._key is None:
            raise SigningKeyMissing()
        payload = f"file-preview|{file_id}|{timestamp}|{nonce}".encode()
        return base64.urlsafe_b64encode(hmac.new(self._key, payload, hashlib.sha256).digest()).decode()

    def url(self, file_id: uuid.UUID | str, *, as_attachment: bool = False) -> str:
        """A link to the file, valid for ``timeout_seconds`` from now."""
        timestamp, nonce = str(int(self._clock())), secrets.token_hex(16)
        query = {"timestamp": timestamp, "nonce": nonce, "sign": self._sign(file_id, timestamp, nonce)}
        if as_attachment:
            query["as_attachment"] = "true"
        return f"{self.base_url}/files/{file_id}/file-preview?{urlencode(query)}"

    def verify(self, file_id: uuid.UUID | str, timestamp: str, nonce: str, sign: str) -> bool:
        """True when ``sign`` is this service's signature of the link and the link has not expired."""
        try:
            issued = int(timestamp)
        except ValueError:
            return False
        expected = self._sign(file_id, timestamp, nonce)
        if not hmac.compare_digest(expected.encode(), sign.encode()):
            return False
        return int(self._clock()) - issued <= self.timeout_seconds
