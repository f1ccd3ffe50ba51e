"""Content-Encoding decoding that never inflates more than ``CHUNK`` bytes at a time.

httpx decodes each network chunk in one call: 64 KiB of gzip can become 64 MB before anyone counts it. These
decoders hand out at most ``CHUNK`` decoded bytes per step (``zlib``'s ``max_length``), so a caller counting
bytes stops a compression bomb after reading about its limit. ``gzip``, ``x-gzip`` and ``deflate`` (zlib or
raw, as servers send both) are decoded, also stacked (``gzip, gzip``); other codings pass through untouched,
as httpx leaves codings it does not know.
"""

from __future__ import annotations

import zlib
from collections.abc import AsyncGenerator, AsyncIterator, Iterator

CHUNK = 64 * 1024
#: what the client asks for unless the caller set Accept-Encoding itself
ACCEPT_ENCODING = "gzip, deflate"


class DecodingError(Exception):
    """The body does not decode as its Content-Encoding says."""


class _Inflater:
    def __init__(self, coding: str) -> None:
        self.coding = coding
        self.first = True
        wbits = zlib.MAX_WBITS | 16 if coding in ("gzip", "x-gzip") else zlib.MAX_WBITS
        self.inflater = zlib.decompressobj(wbits)

    def feed(self, data: bytes) -> Iterator[bytes]:
        if self.first and data and self.coding == "deflate":
            self.first = False
            try:  # "deflate" is zlib-wrapped by the RFC and raw by many servers: try the RFC first
                zlib.decompressobj().decompress(data[:2])
            except zlib.error:
                self.inflater = zlib.decompressobj(-zlib.MAX_WBITS)
        try:
            while data:
                out = self.inflater.decompress(data, CHUNK)
                data = self.inflater.unconsumed_tail
                if out:
                    yield out
                if self.inflater.eof:
                    return  # bytes after the end of the stream are ignored, as httpx does
        except zlib.error as exc:
            raise DecodingError(f"{self.coding} body does not decode: {exc}") from None

    def flush(self) -> Iterator[bytes]:
        try:
            out = self.inflater.flush()
        except zlib.error as exc:
            raise DecodingError(f"{self.coding} body does not decode: {exc}") from None
        for start in range(0, len(out), CHUNK):
            yield out[start : start + CHUNK]


def codings(content_encoding: str | None) -> list[str]:
    """The codings a body was encoded with, outermost last (as listed in the header)."""
    return [c.strip().lower() for c in (content_encoding or "").split(",") if c.strip()]


def supported(content_encoding: str | None) -> bool:
    return all(c in ("gzip", "x-gzip", "deflate", "identity") for c in codings(content_encoding))


def _chain(decoders: list[_Inflater], data: bytes, final: bool) -> Iterator[bytes]:
    """Push ``data`` through the decoders (the last applied coding is undone first)."""
    if not decoders:
        if data:
            yield data
        return
    head, rest = decoders[0], decoders[1:]
    for piece in head.feed(data):
        yield from _chain(rest, piece, False)
    if final:
        for piece in head.flush():
            yield from _chain(rest, piece, False)
        yield from _chain(rest, b"", True)


async def decode(raw: AsyncIterator[bytes], content_encoding: str | None) -> AsyncGenerator[bytes, None]:
    """The decoded body, in pieces of at most ``CHUNK`` bytes (raw pieces pass as they come if not encoded)."""
    names = [c for c in codings(content_encoding) if c != "identity"]
    if not names or not supported(content_encoding):
        async for data in raw:
            if data:
                yield data
        return
    decoders = [_Inflater(name) for name in reversed(names)]
    async for data in raw:
        for piece in _chain(decoders, data, False):
            yield piece
    for piece in _chain(decoders, b"", True):
        yield piece
