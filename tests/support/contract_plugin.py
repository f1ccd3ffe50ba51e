"""The conformance check as a pytest plugin: every response an HTTP test receives on an operation of Dify's
Service API description is checked against the document (:mod:`tests.support.dify_contract`).

It watches two doors, so new tests are covered without extra code:

- Litestar's in-process test transport (every ``AsyncTestClient``, whichever fixture made it);
- httpx's network transports, for requests to a live service's origin (``LiveService`` registers its base URL
  with :func:`watch`), including the Dify SDK's calls. Those bodies are checked as the test reads them, so a
  stream the test cuts short is checked up to where it stopped.

Violations are collected while a test runs (setup included) and fail that test at the end of its call phase,
one line each: operation, status, JSON path, expected and got. Without the document (``../shared`` absent) the
check is skipped, and the report header says so once.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Generator, Iterable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar.testing.transport import TestClientTransport

from tests.support.dify_contract import Contract, Violation, document_path

#: Bodies larger than this are not buffered for checking (file downloads, zips).
MAX_CHECKED_BODY = 8 * 1024 * 1024
_watched: set[str] = set()


def watch(base_url: str) -> None:
    """Check the responses of a live service at this origin (``http://127.0.0.1:PORT``)."""
    _watched.add(str(httpx.URL(base_url).copy_with(path="/", query=None)).rstrip("/"))


class Recorder:
    """The loaded contract (or why it is skipped), this test's violations, and what the session exercised."""

    def __init__(self) -> None:
        path = document_path()
        self.contract: Contract | None = Contract.load(path) if path.exists() else None
        self.skip_reason = None if self.contract else f"{path} is absent (../shared not present)"
        self.violations: list[Violation] = []
        self.seen: Counter[tuple[str, int]] = Counter()
        self.checked = 0
        self.lock = threading.Lock()

    def check(self, method: str, url: httpx.URL, status: int, content_type: str, body: bytes) -> None:
        if self.contract is None:
            return
        op, found = self.contract.check(method, url.path, status, content_type, body)
        if op is None:
            return
        with self.lock:
            self.checked += 1
            self.seen[(op.name, status)] += 1
            self.violations.extend(found)

    def take(self) -> list[Violation]:
        with self.lock:
            found, self.violations = self.violations, []
        return found


RECORDER: Recorder | None = None


def recorder() -> Recorder:
    global RECORDER
    if RECORDER is None:
        RECORDER = Recorder()
    return RECORDER


def _content_type(response: httpx.Response) -> str:
    return response.headers.get("content-type", "")


class _CheckedStream(httpx.SyncByteStream, httpx.AsyncByteStream):
    """Passes a live response's body through, keeping a copy, and checks it when the response is closed."""

    def __init__(self, inner: Any, request: httpx.Request, response: httpx.Response) -> None:
        self.inner, self.request, self.response = inner, request, response
        self.buffer = bytearray()
        self.overflow = False
        self.done = False

    def _keep(self, chunk: bytes) -> None:
        if not self.overflow:
            self.buffer += chunk
            self.overflow = len(self.buffer) > MAX_CHECKED_BODY

    def _finish(self) -> None:
        if self.done or self.overflow:
            return
        self.done = True
        body = bytes(self.buffer)
        if _content_type(self.response).startswith("text/event-stream"):
            body = body[: body.rfind(b"\n\n") + 2] if b"\n\n" in body else b""  # complete events only
        recorder().check(
            self.request.method,
            self.request.url,
            self.response.status_code,
            _content_type(self.response),
            body,
        )

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self.inner:
            self._keep(chunk)
            yield chunk

    async def __aiter__(self) -> Any:
        async for chunk in self.inner:
            self._keep(chunk)
            yield chunk

    def close(self) -> None:
        try:
            self.inner.close()
        finally:
            self._finish()

    async def aclose(self) -> None:
        try:
            await self.inner.aclose()
        finally:
            self._finish()


def _is_watched(url: httpx.URL) -> bool:
    return str(url.copy_with(path="/", query=None)).rstrip("/") in _watched


def install(monkeypatch: pytest.MonkeyPatch) -> None:
    """Wrap the in-process and the network transports (undone with the monkeypatch)."""
    in_process = TestClientTransport.handle_request

    def handle_in_process(self: Any, request: httpx.Request) -> httpx.Response:
        response = in_process(self, request)
        body = b"".join(response.stream)  # type: ignore[arg-type]  # a complete ByteStream here
        recorder().check(request.method, request.url, response.status_code, _content_type(response), body)
        return response

    sync_send = httpx.HTTPTransport.handle_request
    async_send = httpx.AsyncHTTPTransport.handle_async_request

    def handle_sync(self: httpx.HTTPTransport, request: httpx.Request) -> httpx.Response:
        response = sync_send(self, request)
        if _is_watched(request.url):
            response.stream = _CheckedStream(response.stream, request, response)
        return response

    async def handle_async(self: httpx.AsyncHTTPTransport, request: httpx.Request) -> httpx.Response:
        response = await async_send(self, request)
        if _is_watched(request.url):
            response.stream = _CheckedStream(response.stream, request, response)
        return response

    monkeypatch.setattr(TestClientTransport, "handle_request", handle_in_process)
    monkeypatch.setattr(httpx.HTTPTransport, "handle_request", handle_sync)
    monkeypatch.setattr(httpx.AsyncHTTPTransport, "handle_async_request", handle_async)


def violation_report(nodeid: str, found: Iterable[Violation]) -> str:
    lines = [str(v) for v in dict.fromkeys(found)]
    return (
        f"{nodeid}: {len(lines)} response(s) differ from Dify's Service API description "
        "(fix the response, or name the difference in docs/dify-api-differences.md):\n  " + "\n  ".join(lines)
    )


class ContractViolation(AssertionError):
    """A response differs from Dify's published Service API description."""


# ---- pytest hooks (imported by tests/conftest.py) ----------------------------------------------------------


@pytest.fixture(scope="session", autouse=True)
def dify_contract_check() -> Iterator[Recorder]:
    """Installs the check for the whole session (a no-op when the document is absent)."""
    rec = recorder()
    with pytest.MonkeyPatch.context() as monkeypatch:
        if rec.contract is not None:
            install(monkeypatch)
        yield rec


def pytest_report_header(config: pytest.Config) -> str:
    rec = recorder()
    if rec.contract is None:
        return f"dify contract: SKIPPED, responses are not checked: {rec.skip_reason}"
    return f"dify contract: responses on documented operations are checked against {document_path()}"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Generator[None, None, None]:
    recorder().take()  # a fresh list for this test
    return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    result = yield  # a failing test raises here, and its own failure is the one to show
    found = recorder().take()
    if found:
        raise ContractViolation(violation_report(item.nodeid, found))
    return result


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Generator[None, None, None]:
    result = yield
    found = recorder().take()
    if found:
        raise ContractViolation(violation_report(item.nodeid, found))
    return result


def pytest_terminal_summary(terminalreporter: Any) -> None:
    rec = recorder()
    if rec.contract is None:
        return  # the report header said so
    operations = {name for name, _ in rec.seen}
    terminalreporter.write_line(
        f"dify contract: {rec.checked} responses checked on {len(operations)} documented operations"
    )
    target = coverage_file()
    if target is not None and rec.seen:
        seen = {f"{name} {status}": count for (name, status), count in rec.seen.items()}
        target.write_text(json.dumps(seen, indent=1, sort_keys=True))


def coverage_file() -> Path | None:
    """Where the last session's exercised (operation, status) pairs are kept for ``just compat`` (in .data)."""
    folder = Path(__file__).resolve().parents[2] / ".data"
    return folder / "contract-seen.json" if folder.is_dir() else None
