"""Bodies are streamed and capped on decoded bytes: a huge body or a compression bomb stops at the cap, in
bounded memory and time."""

from __future__ import annotations

import gzip
import time
import tracemalloc
import zlib

import pytest

from app.net.errors import ResponseTooLarge, UpstreamError
from tests.net.conftest import make_client
from tests.support.http_target import HttpTarget, Reply, gzip_stream
from tests.support.net_fakes import LoopbackOnlyBackend

LOOPBACK = ["127.0.0.0/8"]
CAP = 1024 * 1024
GIB = 1024 * 1024 * 1024


async def test_an_endless_body_stops_at_the_cap(target: HttpTarget, backend: LoopbackOnlyBackend) -> None:
    client = make_client(backend, LOOPBACK)
    tracemalloc.start()
    started = time.perf_counter()
    try:
        with pytest.raises(ResponseTooLarge) as error:
            await client.request("GET", target.url(f"/stream?size={GIB}"), max_bytes=CAP)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    elapsed = time.perf_counter() - started
    assert error.value.limit == CAP
    assert CAP < error.value.received <= CAP + 64 * 1024
    print(
        f"\n1 GiB stream, cap 1 MiB: stopped after {error.value.received} bytes, {elapsed:.2f}s, peak {peak / 1e6:.1f} MB"
    )
    assert peak < 6 * CAP  # the 1 MiB kept plus pieces in flight, not the gigabyte
    assert elapsed < 10
    assert target.sent < 64 * 1024 * 1024  # the server was cut off long before a gigabyte


async def test_a_gzip_bomb_stops_at_the_cap(target: HttpTarget, backend: LoopbackOnlyBackend) -> None:
    client = make_client(backend, LOOPBACK)
    tracemalloc.start()
    try:
        with pytest.raises(ResponseTooLarge) as error:
            await client.request("GET", target.url(f"/gzip-bomb?size={4 * GIB}"), max_bytes=CAP)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    print(
        f"\n4 GiB gzip bomb, cap 1 MiB: stopped after {error.value.received} decoded bytes, peak {peak / 1e6:.1f} MB"
    )
    assert error.value.received <= CAP + 64 * 1024
    assert peak < 6 * CAP


async def test_a_bomb_in_one_network_chunk_is_inflated_piece_by_piece(
    target: HttpTarget, backend: LoopbackOnlyBackend
) -> None:
    """200 KB of gzip that inflates to 200 MB, sent with a Content-Length in one go: httpx's own decoder would
    inflate each 64 KiB read to ~64 MB at once."""
    bomb = gzip.compress(b"\0" * 200_000_000, compresslevel=9)
    target.route("/dense", lambda _r: Reply(200, [("Content-Encoding", "gzip")], bomb))
    tracemalloc.start()
    try:
        with pytest.raises(ResponseTooLarge):
            await make_client(backend, LOOPBACK).request("GET", target.url("/dense"), max_bytes=CAP)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    print(f"\n{len(bomb)} B dense gzip bomb: peak {peak / 1e6:.1f} MB")
    assert peak < 6 * CAP


async def test_encoded_bodies_decode(target: HttpTarget, backend: LoopbackOnlyBackend) -> None:
    text = b"hello " * 1000
    raw_deflate = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    bodies = {
        "gzip": gzip.compress(text),
        "deflate": zlib.compress(text),
        "raw-deflate": raw_deflate.compress(text) + raw_deflate.flush(),
        "gzip, gzip": gzip.compress(gzip.compress(text)),
    }
    for i, (coding, body) in enumerate(bodies.items()):
        name = f"encoded-{i}"
        coding = "deflate" if coding == "raw-deflate" else coding
        target.route(f"/{name}", lambda _r, b=body, c=coding: Reply(200, [("Content-Encoding", c)], b))
        response = await make_client(backend, LOOPBACK).request("GET", target.url(f"/{name}"), max_bytes=CAP)
        assert response.content == text, coding
    streamed = b"".join(gzip_stream(300_000))
    target.route(
        "/streamed", lambda _r: Reply(200, [("Content-Encoding", "gzip")], [streamed[:100], streamed[100:]])
    )
    response = await make_client(backend, LOOPBACK).request("GET", target.url("/streamed"), max_bytes=CAP)
    assert response.content == b"\0" * 300_000


async def test_a_broken_encoding_is_an_upstream_error(
    target: HttpTarget, backend: LoopbackOnlyBackend
) -> None:
    target.route("/broken", lambda _r: Reply(200, [("Content-Encoding", "gzip")], b"not gzip at all"))
    with pytest.raises(UpstreamError, match="gzip"):
        await make_client(backend, LOOPBACK).request("GET", target.url("/broken"), max_bytes=CAP)


async def test_a_declared_length_over_the_cap_fails_before_reading(
    target: HttpTarget, backend: LoopbackOnlyBackend
) -> None:
    target.route("/declared", lambda _r: Reply(200, [("Content-Length", str(50 * CAP))], iter([b"x" * 10])))
    client = make_client(backend, LOOPBACK)
    async with client.stream("GET", target.url("/declared"), max_bytes=CAP) as response:
        assert response.content_length == 50 * CAP
        with pytest.raises(ResponseTooLarge) as error:
            await response.read()
    assert error.value.received == 50 * CAP
