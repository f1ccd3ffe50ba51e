"""Recipient tokens: HMAC-SHA256(SLUICE_SECRET_KEY, a 128-bit CSPRNG nonce), 256 bits, URL-safe.

Only SHA-256(token) is stored (unique index, for lookup); the nonce is stored too, so the service — which alone
holds the key — can rebuild a recipient's link whenever it delivers it. A database dump without the key
cannot produce a token, and a token cannot be recovered from its hash.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

from app.errors import SluiceError

NONCE_BYTES = 16


class SecretKeyMissing(SluiceError):
    """SLUICE_SECRET_KEY is not set: human-input forms cannot be created or answered."""

    status, code = 503, "secret_key_missing"


def new_nonce() -> bytes:
    return secrets.token_bytes(NONCE_BYTES)


def make_token(secret_key: str | None, nonce: bytes) -> str:
    if not secret_key:
        raise SecretKeyMissing()
    digest = hmac.new(secret_key.encode(), nonce, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def same_hash(a: bytes, b: bytes) -> bool:
    return hmac.compare_digest(a, b)
