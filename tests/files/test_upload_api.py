"""``POST /v1/files/upload``: Dify's checks in Dify's order, the 201 shape, per-type limits (streamed: a huge
body is refused without being read), hostile names; previews and signed links with their safety headers."""

from __future__ import annotations

import time
import urllib.parse
import uuid
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from app.files.signing import FileSigner
from app.settings import Settings
from tests.files.conftest import MB, assert_error, new_app, upload

BOUNDARY = "sluiceboundary"


def multipart(*parts: tuple[str, str | None, str | None, bytes]) -> tuple[bytes, dict[str, str]]:
    """A hand-made multipart body: (field, filename or None, content type or None, bytes) per part."""
    chunks = []
    for field, filename, content_type, data in parts:
        disposition = f'form-data; name="{field}"'
        if filename is not None:
            disposition += f'; filename="{filename}"'
        head = f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n"
        if content_type is not None:
            head += f"Content-Type: {content_type}\r\n"
        chunks.append(head.encode() + b"\r\n" + data + b"\r\n")
    body = b"".join(chunks) + f"--{BOUNDARY}--\r\n".encode()
    return body, {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}


async def raw_upload(client: AsyncTestClient[Litestar], headers: dict[str, str], *parts: Any) -> Any:
    body, content_type = multipart(*parts)
    return await client.post("/v1/files/upload", content=body, headers={**headers, **content_type})


async def test_upload_answers_201_with_difys_shape(client: AsyncTestClient[Litestar]) -> None:
    app = await new_app(client)
    before = int(time.time())
    response = await upload(client, app, "Report.PDF", b"%PDF-1.4 tiny", "application/pdf")
    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == {
        "id", "name", "size", "extension", "mime_type", "created_by", "created_at", "preview_url",
        "source_url", "original_url", "user_id", "tenant_id", "conversation_id", "file_key",
    }  # fmt: skip
    assert uuid.UUID(body["id"])
    assert uuid.UUID(body["tenant_id"])
    assert (body["name"], body["size"], body["extension"], body["mime_type"]) == (
        "Report.PDF",
        13,
        "pdf",
        "application/pdf",
    )
    assert body["created_by"] == "alice"
    assert body["created_at"] >= before
    assert body["preview_url"] is None
    assert body["original_url"] is None
    assert body["file_key"] is None
    assert body["source_url"].startswith(f"http://files.test/files/{body['id']}/file-preview?timestamp=")


async def test_no_user_is_the_default_end_user(client: AsyncTestClient[Litestar]) -> None:
    app = await new_app(client)
    response = await upload(client, app, "a.txt", b"x", user=None)
    assert response.status_code == 201
    assert response.json()["created_by"] == "DEFAULT-USER"


async def test_checks_come_in_difys_order(client: AsyncTestClient[Litestar]) -> None:
    app = await new_app(client)
    h = app.headers
    # 1. no file part (a plain field, or no multipart body at all)
    assert_error(
        await raw_upload(client, h, ("user", None, None, b"alice")),
        400,
        "no_file_uploaded",
        "Please upload your file.",
    )
    assert_error(await client.post("/v1/files/upload", json={}, headers=h), 400, "no_file_uploaded")
    # 2. more than one file part, even if every part is wrong in a later way
    two = [("file", "a.exe", None, b"x"), ("other", "b/c.txt", "text/plain", b"y")]
    assert_error(await raw_upload(client, h, *two), 400, "too_many_files", "Only one file is allowed.")
    # 3. no MIME type beats a missing name, a slash and a blacklisted extension
    assert_error(
        await raw_upload(client, h, ("file", "../x.exe", None, b"x")),
        415,
        "unsupported_file_type",
        "File type not allowed.",
    )
    # 4. no file name
    assert_error(
        await raw_upload(client, h, ("file", "", "text/plain", b"x")),
        400,
        "filename_not_exists_error",
        "The specified filename does not exist.",
    )
    # 5. a path separator (before the blacklist)
    for name in ("../x.exe", "a\\\\b.exe", "dir/a.txt"):
        assert_error(
            await raw_upload(client, h, ("file", name, "text/plain", b"x")),
            400,
            "invalid_param",
            "Filename contains invalid characters",
        )
    # 6. the blacklist (case-insensitive), before the size
    big = b"x" * (2 * MB)
    assert_error(
        await raw_upload(client, h, ("file", "run.EXE", "application/octet-stream", big)),
        400,
        "invalid_param",
        "File extension '.exe' is not allowed for security reasons",
    )
    # 7. the size
    assert_error(await raw_upload(client, h, ("file", "big.txt", "text/plain", big)), 413, "file_too_large")


@pytest.mark.parametrize(
    ("name", "allowed_mb"),
    [
        ("a.txt", 1),
        ("noext", 1),
        ("a.PNG", 2),
        ("a.svg", 2),
        ("a.mp3", 3),
        ("a.wav", 3),
        ("a.mp4", 4),
        ("a.MOV", 4),
    ],
)
async def test_size_limit_depends_on_the_extension(
    client: AsyncTestClient[Litestar], name: str, allowed_mb: int
) -> None:
    app = await new_app(client)
    ok = await upload(client, app, name, b"x" * (allowed_mb * MB), "application/octet-stream")
    assert ok.status_code == 201, ok.text
    too_big = await upload(client, app, name, b"x" * (allowed_mb * MB + 1), "application/octet-stream")
    assert_error(too_big, 413, "file_too_large")
    assert f"{allowed_mb} MB" in too_big.json()["message"]


async def test_hostile_names(client: AsyncTestClient[Litestar]) -> None:
    app = await new_app(client)
    h = app.headers
    assert_error(
        await raw_upload(client, h, ("file", "a\x00b.txt", "text/plain", b"x")),
        400,
        "invalid_param",
        "Filename contains invalid characters",
    )
    long_name = "n" * 10_000 + ".tar.GZ"
    response = await raw_upload(client, h, ("file", long_name, "text/plain", b"x"))
    assert response.status_code == 201, response.text
    assert response.json()["name"] == "n" * 200 + ".gz"
    assert response.json()["extension"] == "gz"
    long_extension = "a." + "x" * 300
    assert_error(
        await raw_upload(client, h, ("file", long_extension, "text/plain", b"x")), 400, "invalid_param"
    )
    # an odd MIME type is stored as a generic one, never echoed into a header
    odd = await raw_upload(client, h, ("file", "a.bin", "text/html\x0bevil", b"x"))
    assert odd.status_code == 201
    assert odd.json()["mime_type"] == "application/octet-stream"


async def test_huge_upload_is_refused_without_reading_it(
    files_settings: Settings, client: AsyncTestClient[Litestar]
) -> None:
    """Straight at the ASGI app (the test client would buffer the body first): 413 after about the limit."""
    from app.asgi import create_app

    app = await new_app(client)
    asgi_app = create_app(files_settings, configure_logs=False)
    head = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="huge.txt"\r\n'
        "Content-Type: text/plain\r\n\r\n"
    ).encode()
    chunk = b"x" * (256 * 1024)
    total_chunks = 400  # 100 MB offered
    sent = 0

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent == 0:
            sent += 1
            return {"type": "http.request", "body": head, "more_body": True}
        sent += 1
        return {"type": "http.request", "body": chunk, "more_body": sent < total_chunks}

    messages: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        messages.append(message)

    headers = [(b"content-type", f"multipart/form-data; boundary={BOUNDARY}".encode())]
    headers += [(k.lower().encode(), v.encode()) for k, v in app.headers.items()]
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
        "path": "/v1/files/upload", "raw_path": b"/v1/files/upload", "query_string": b"", "root_path": "",
        "headers": headers, "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80), "state": {},
    }  # fmt: skip
    async with asgi_app.lifespan():
        await asgi_app(scope, receive, send)  # type: ignore[arg-type]
    start = next(m for m in messages if m["type"] == "http.response.start")
    assert start["status"] == 413
    read_bytes = (sent - 1) * len(chunk)
    assert read_bytes <= 2 * MB, f"read {read_bytes} bytes of a 100 MB body"


async def test_a_declared_huge_body_is_refused_before_reading(client: AsyncTestClient[Litestar]) -> None:
    app = await new_app(client)
    body, content_type = multipart(("file", "a.txt", "text/plain", b"x"))
    response = await client.post(
        "/v1/files/upload",
        content=body,
        headers={**app.headers, **content_type, "Content-Length": str(500 * MB)},
    )
    assert_error(response, 413, "file_too_large")


# -- previews ----------------------------------------------------------------------------------------------------


async def test_preview_of_an_app_file(client: AsyncTestClient[Litestar]) -> None:
    app = await new_app(client)
    file_id = (await upload(client, app, "notes.md", b"# hi\n", "text/markdown")).json()["id"]
    inline = await client.get(f"/v1/files/{file_id}/preview", headers=app.headers)
    assert inline.status_code == 200
    assert inline.content == b"# hi\n"
    assert inline.headers["content-type"].startswith("text/markdown")
    assert inline.headers["x-content-type-options"] == "nosniff"
    assert "sandbox" in inline.headers["content-security-policy"]
    assert "default-src 'none'" in inline.headers["content-security-policy"]
    assert "content-disposition" not in inline.headers
    assert inline.headers["content-length"] == "5"
    attached = await client.get(f"/v1/files/{file_id}/preview?as_attachment=true", headers=app.headers)
    assert attached.headers["content-type"] == "application/octet-stream"
    assert attached.headers["content-disposition"] == "attachment; filename*=UTF-8''notes.md"


async def test_html_is_always_a_download(client: AsyncTestClient[Litestar]) -> None:
    app = await new_app(client)
    for name, mime in (
        ("page.html", "text/plain"),
        ("page.txt", "text/html"),
        ("x.HTM", "application/xhtml+xml"),
    ):
        file_id = (await upload(client, app, name, b"<script>alert(1)</script>", mime)).json()["id"]
        response = await client.get(f"/v1/files/{file_id}/preview", headers=app.headers)
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/octet-stream", name
        assert response.headers["content-disposition"].startswith("attachment; filename*=UTF-8''"), name
        assert response.headers["x-content-type-options"] == "nosniff"


async def test_preview_names_are_encoded(client: AsyncTestClient[Litestar]) -> None:
    app = await new_app(client)
    file_id = (await upload(client, app, 'ré"sumé; x.txt', b"x")).json()["id"]
    response = await client.get(f"/v1/files/{file_id}/preview?as_attachment=1", headers=app.headers)
    assert response.headers["content-disposition"] == (
        "attachment; filename*=UTF-8''" + urllib.parse.quote('ré"sumé; x.txt', safe="")
    )


async def test_preview_of_other_files(client: AsyncTestClient[Litestar]) -> None:
    app, other = await new_app(client), await new_app(client)
    file_id = (await upload(client, other, "a.txt", b"secret")).json()["id"]
    assert_error(
        await client.get(f"/v1/files/{file_id}/preview", headers=app.headers),
        403,
        "file_access_denied",
        "Access to the requested file is denied.",
    )
    assert_error(
        await client.get(f"/v1/files/{uuid.uuid4()}/preview", headers=app.headers),
        404,
        "file_not_found",
        "The requested file was not found.",
    )
    assert (await client.get("/v1/files/not-a-uuid/preview", headers=app.headers)).status_code == 404
    assert (await client.get(f"/v1/files/{file_id}/preview")).status_code == 401


async def test_media_previews_honour_byte_ranges(client: AsyncTestClient[Litestar]) -> None:
    app = await new_app(client)
    file_id = (await upload(client, app, "a.mp3", bytes(range(100)), "audio/mpeg")).json()["id"]
    whole = await client.get(f"/v1/files/{file_id}/preview", headers=app.headers)
    assert whole.headers["accept-ranges"] == "bytes"
    assert len(whole.content) == 100
    part = await client.get(f"/v1/files/{file_id}/preview", headers={**app.headers, "Range": "bytes=10-19"})
    assert part.status_code == 206
    assert part.content == bytes(range(10, 20))
    assert part.headers["content-range"] == "bytes 10-19/100"
    tail = await client.get(f"/v1/files/{file_id}/preview", headers={**app.headers, "Range": "bytes=-5"})
    assert tail.status_code == 206
    assert tail.content == bytes(range(95, 100))


# -- signed links ------------------------------------------------------------------------------------------------


def _link_path(url: str) -> str:
    parsed = urllib.parse.urlparse(url)
    return f"{parsed.path}?{parsed.query}"


async def test_signed_link_serves_the_file(client: AsyncTestClient[Litestar]) -> None:
    app = await new_app(client)
    body = (await upload(client, app, "page.html", b"<b>hi</b>", "text/html")).json()
    response = await client.get(_link_path(body["source_url"]))
    assert response.status_code == 200
    assert response.content == b"<b>hi</b>"
    assert response.headers["content-type"] == "application/octet-stream"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["content-disposition"].startswith("attachment;")


async def test_signed_link_tampering_and_expiry(
    client: AsyncTestClient[Litestar], files_settings: Settings
) -> None:
    app = await new_app(client)
    first = (await upload(client, app, "a.txt", b"one")).json()
    second = (await upload(client, app, "b.txt", b"two")).json()
    link = urllib.parse.urlparse(first["source_url"])
    query = dict(urllib.parse.parse_qsl(link.query))

    async def fetch(file_id: str, **changes: str) -> Any:
        params = urllib.parse.urlencode({**query, **changes})
        return await client.get(f"/files/{file_id}/file-preview?{params}")

    assert (await fetch(first["id"])).status_code == 200
    not_found = "File not found or signature is invalid"
    assert_error(await fetch(second["id"]), 404, "not_found", not_found)  # another file's signature
    assert_error(await fetch(first["id"], nonce="0" * 32), 404, "not_found", not_found)
    assert_error(
        await fetch(first["id"], timestamp=str(int(query["timestamp"]) + 1)), 404, "not_found", not_found
    )
    assert_error(await fetch(first["id"], sign=query["sign"][:-2] + "AA"), 404, "not_found", not_found)
    assert_error(await fetch(first["id"], timestamp="soon"), 404, "not_found")
    missing = await client.get(f"/files/{first['id']}/file-preview?timestamp=1&nonce=x")
    assert missing.status_code == 400
    # signed with the right key long ago: expired after FILES_ACCESS_TIMEOUT
    old = FileSigner(files_settings.secret_key, "http://x", 300, clock=lambda: time.time() - 301)
    assert (await client.get(_link_path(old.url(first["id"])))).status_code == 404
    fresh = FileSigner(files_settings.secret_key, "http://x", 300, clock=lambda: time.time() - 290)
    assert (await client.get(_link_path(fresh.url(first["id"])))).status_code == 200
    forged = FileSigner("another-key", "http://x", 300)
    assert (await client.get(_link_path(forged.url(first["id"])))).status_code == 404


async def test_upload_without_secret_key_fails_clearly(files_settings: Settings) -> None:
    import msgspec

    from app.asgi import create_app

    keyless = msgspec.structs.replace(files_settings, secret_key=None)
    async with AsyncTestClient(app=create_app(keyless, configure_logs=False)) as client:
        app = await new_app(client)
        response = await upload(client, app, "a.txt", b"x")
        assert_error(response, 503, "secret_key_missing")
        assert "SLUICE_SECRET_KEY" in response.json()["message"]


async def test_parameters_show_the_upload_limits(client: AsyncTestClient[Litestar]) -> None:
    app = await new_app(client)
    body = (await client.get("/v1/parameters", headers=app.headers)).json()
    assert body["system_parameters"] == {
        "image_file_size_limit": 2,
        "video_file_size_limit": 4,
        "audio_file_size_limit": 3,
        "file_size_limit": 1,
        "workflow_file_upload_limit": 10,
    }
