"""The `http-request` node through the real engine, the real guarded client and a real loopback server.

Files go through an in-memory ``FilePort`` (tests/support/memory_files.py); everything else is real.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import pytest

from app.net.client import GuardedClient
from app.net.node_port import HttpNodePort
from app.net.policy import NetPolicy
from app.workflows.engine.errors import NodeConfigError
from app.workflows.engine.graph import NodeSpec
from app.workflows.engine.nodes.base import Ports
from app.workflows.engine.nodes.http_request import HttpLimits, HttpRequestNode
from app.workflows.engine.state import NodeRun, Outcome
from tests.support.http_target import HttpTarget, Reply, zeros
from tests.support.memory_files import MemoryFiles
from tests.support.net_fakes import LoopbackOnlyBackend
from tests.workflows.engine.helpers import Recorder, edge, graph, node, run_graph

MIB = 1024 * 1024


@pytest.fixture
def target() -> Iterator[HttpTarget]:
    with HttpTarget("127.0.0.1") as server:
        yield server


@pytest.fixture
def files() -> MemoryFiles:
    return MemoryFiles()


def ports(
    files: MemoryFiles | None = None, allow: tuple[str, ...] = ("127.0.0.0/8",), **limits: Any
) -> Ports:
    client = GuardedClient(NetPolicy.of(allow), network_backend=LoopbackOnlyBackend())
    return Ports(http=HttpNodePort(client, HttpLimits(**limits)), files=files)


def http(url: str, **data: Any) -> dict[str, Any]:
    config = {
        "method": "get",
        "url": url,
        "authorization": {"type": "no-auth", "config": None},
        "headers": "",
        "params": "",
        "body": {"type": "none", "data": []},
        "timeout": {"max_connect_timeout": 0, "max_read_timeout": 0, "max_write_timeout": 0},
        "variables": [],
    }
    return node("http", "http-request", **{**config, **data})


def flow(http_node: dict[str, Any], *, fail_branch: bool = False) -> Any:
    outputs = [
        {"variable": k, "value_selector": ["http", k]} for k in ("status_code", "body", "headers", "files")
    ]
    nodes = [
        node("start", "start", variables=[{"variable": "v", "type": "paragraph", "required": False}]),
        http_node,
        node("end", "end", outputs=outputs),
    ]
    edges = [edge("start", "http"), edge("http", "end")]
    if fail_branch:
        nodes.append(
            node("sorry", "end", outputs=[{"variable": "error", "value_selector": ["http", "error_message"]}])
        )
        edges.append(edge("http", "sorry", "fail-branch"))
    return graph(nodes, edges)


async def run(
    http_node: dict[str, Any],
    v: str = "",
    *,
    node_ports: Ports | None = None,
    pool_files: dict[str, Any] | None = None,
    fail_branch: bool = False,
) -> tuple[Outcome, NodeRun]:
    outcome, recorder, _ = await run_graph(
        flow(http_node, fail_branch=fail_branch),
        {"v": v},
        ports=node_ports or ports(),
        pools={"files": pool_files} if pool_files else None,
    )
    return outcome, http_run(recorder)


def http_run(recorder: Recorder) -> NodeRun:
    return next(r for r in recorder.finished if r.node.id == "http")


def echoed(outcome: Outcome) -> dict[str, Any]:
    return json.loads(outcome.outputs["body"])


# --- request assembly -------------------------------------------------------------------------------------


async def test_get_with_params_headers_and_outputs(target: HttpTarget) -> None:
    outcome, execution = await run(
        http(
            target.url("/{{#start.v#}}"),
            params="a: 1\na: {{#start.v#}}\nflag\n : ignored",
            headers="X-One: {{#start.v#}}\nX-Empty",
        ),
        "echo",
    )
    assert outcome.status == "succeeded", outcome.error
    received = target.requests[-1]
    assert received.path == "/echo"
    assert received.query == {"a": ["1", "echo"], "flag": [""]}
    assert received.header("X-One") == "echo"
    assert received.header("X-Empty") == ""
    assert outcome.outputs["status_code"] == 200
    assert outcome.outputs["files"] == []
    assert outcome.outputs["headers"]["content-type"] == "application/json"
    assert echoed(outcome)["method"] == "GET"
    assert execution.state.status == "succeeded"


async def test_a_newline_in_a_header_variable_adds_a_header_as_in_dify(target: HttpTarget) -> None:
    await run(http(target.url(), headers="X-One: {{#start.v#}}"), "1\nX-Injected: yes")
    received = target.requests[-1]
    assert received.header("X-One") == "1"
    assert received.header("X-Injected") == "yes"


async def test_a_newline_in_a_param_variable_stays_inside_the_value(target: HttpTarget) -> None:
    await run(http(target.url(), params="q: {{#start.v#}}"), "1\nextra: yes")
    assert target.requests[-1].query == {"q": ["1\nextra: yes"]}


@pytest.mark.parametrize(
    ("config", "header", "expected"),
    [
        ({"type": "bearer", "api_key": "{{#start.v#}}"}, "Authorization", "Bearer k-123"),
        (
            {"type": "basic", "api_key": "user:pa:ss"},
            "Authorization",
            "Basic " + base64.b64encode(b"user:pa:ss").decode(),
        ),
        ({"type": "basic", "api_key": "dXNlcjpwdw=="}, "Authorization", "Basic dXNlcjpwdw=="),
        ({"type": "custom", "api_key": "raw-{{#start.v#}}", "header": "X-Api-Key"}, "X-Api-Key", "raw-k-123"),
        ({"type": "bearer", "api_key": "k", "header": "X-Token"}, "X-Token", "Bearer k"),
    ],
)
async def test_authorization(target: HttpTarget, config: dict[str, Any], header: str, expected: str) -> None:
    outcome, execution = await run(
        http(target.url(), authorization={"type": "api-key", "config": config}), "k-123"
    )
    assert outcome.status == "succeeded", outcome.error
    assert target.requests[-1].header(header) == expected
    assert execution.result is not None
    assert f"{header}: {'*' * len(expected)}\r\n" in execution.result.process_data["request"]
    assert expected not in execution.result.process_data["request"]


async def test_an_empty_api_key_fails_before_sending(target: HttpTarget) -> None:
    auth = {"type": "api-key", "config": {"type": "bearer", "api_key": "{{#start.v#}}"}}
    outcome, execution = await run(http(target.url(), authorization=auth), "  ")
    assert outcome.status == "failed"
    assert (
        execution.error
        == "API key is required for authorization but was empty. Please provide a valid API key."
    )
    assert execution.error_type == "AuthorizationConfigError"
    assert target.requests == []


async def test_auth_header_replaces_only_the_same_spelling(target: HttpTarget) -> None:
    auth = {"type": "api-key", "config": {"type": "bearer", "api_key": "new"}}
    await run(http(target.url(), authorization=auth, headers="Authorization: old\nauthorization: other"))
    values = [v for k, v in target.requests[-1].headers if k.lower() == "authorization"]
    assert sorted(values) == ["Bearer new", "other"]


def body(kind: str, *items: dict[str, Any]) -> dict[str, Any]:
    return {"type": kind, "data": [{"key": "", "type": "text", "value": "", **item} for item in items]}


async def test_body_none_and_raw_text(target: HttpTarget) -> None:
    await run(http(target.url(), method="post", body=body("none")))
    assert target.requests[-1].body == b""
    assert target.requests[-1].header("Content-Type") is None
    await run(
        http(target.url(), method="post", body=body("raw-text", {"value": "hi {{#start.v#}}"})), "there"
    )
    assert target.requests[-1].body == b"hi there"
    assert target.requests[-1].header("Content-Type") == "text/plain"
    _outcome, execution = await run(http(target.url(), method="post", body=body("raw-text", {}, {})))
    assert execution.error == "raw-text body type should have exactly one item"
    assert execution.error_type == "RequestBodyError"


async def test_body_json_is_repaired(target: HttpTarget) -> None:
    value = "{'name': '{{#start.v#}}', ok: True, 'list': [1, 2,],}"
    outcome, execution = await run(
        http(target.url(), method="post", body=body("json", {"value": value})), "Ada"
    )
    assert outcome.status == "succeeded", outcome.error
    assert json.loads(target.requests[-1].body) == {"name": "Ada", "ok": True, "list": [1, 2]}
    assert target.requests[-1].header("Content-Type") == "application/json"
    outcome, execution = await run(http(target.url(), method="post", body=body("json", {"value": "abc"})))
    assert (execution.error, execution.error_type) == ("Failed to parse JSON: abc", "RequestBodyError")
    # a user's Content-Type wins
    await run(
        http(
            target.url(),
            method="post",
            headers="content-type: application/vnd.x+json",
            body=body("json", {"value": "[1]"}),
        )
    )
    assert target.requests[-1].header("Content-Type") == "application/vnd.x+json"


async def test_body_urlencoded(target: HttpTarget) -> None:
    items = (
        {"key": "a", "value": "1"},
        {"key": "a", "value": "2"},
        {"key": "b{{#start.v#}}", "value": "x y&z"},
    )
    await run(http(target.url(), method="post", body=body("x-www-form-urlencoded", *items)), "!")
    assert target.requests[-1].body == b"a=2&b%21=x+y%26z"
    assert target.requests[-1].header("Content-Type") == "application/x-www-form-urlencoded"


async def test_body_form_data_with_files(target: HttpTarget, files: MemoryFiles) -> None:
    one = files.add("a.txt", b"alpha", "text/plain")
    two = files.add("b.bin", b"\x00\x01", "")
    items = (
        {"key": "title", "value": "T {{#start.v#}}"},
        {"key": "doc", "type": "file", "file": ["files", "one"]},
        {"key": "many", "type": "file", "file": ["files", "many"]},
    )
    outcome, execution = await run(
        http(target.url(), method="post", headers="Content-Type: text/wrong", body=body("form-data", *items)),
        "x",
        node_ports=ports(files),
        pool_files={"one": one, "many": [one, two]},
    )
    assert outcome.status == "succeeded", outcome.error
    received = target.requests[-1]
    content_type = received.header("Content-Type") or ""
    assert content_type.startswith("multipart/form-data; boundary=")
    raw = received.body
    assert b'name="title"\r\n\r\nT x' in raw
    assert b'name="doc"; filename="a.txt"\r\nContent-Type: text/plain\r\n\r\nalpha' in raw
    assert b'name="many"; filename="b.bin"\r\nContent-Type: application/octet-stream\r\n\r\n\x00\x01' in raw
    assert raw.count(b'name="many"') == 2
    log = execution.result.process_data["request"]  # type: ignore[union-attr]
    assert "<file_content_binary: 'a.txt', type='text/plain', size=5 bytes>" in log
    assert "Content-Type: multipart/form-data; boundary=----WebKitFormBoundary" in log


async def test_body_form_data_without_files_sends_a_placeholder_part(target: HttpTarget) -> None:
    await run(http(target.url(), method="post", body=body("form-data", {"key": "k", "value": "v"})))
    raw = target.requests[-1].body
    assert b'name="k"\r\n\r\nv' in raw
    assert b'name="__multipart_placeholder__"' in raw


async def test_body_binary(target: HttpTarget, files: MemoryFiles) -> None:
    blob = files.add("pic.png", bytes(range(256)), "image/png")
    outcome, execution = await run(
        http(target.url(), method="put", body=body("binary", {"type": "file", "file": ["files", "pic"]})),
        node_ports=ports(files),
        pool_files={"pic": blob},
    )
    assert outcome.status == "succeeded", outcome.error
    assert target.requests[-1].body == bytes(range(256))
    assert target.requests[-1].header("Content-Type") is None
    assert execution.result.process_data["request"].endswith("<binary_content: size=256 bytes>")  # type: ignore[union-attr]
    outcome, execution = await run(
        http(target.url(), method="put", body=body("binary", {"type": "file", "file": ["files", "nope"]})),
        node_ports=ports(files),
        pool_files={"pic": blob},
    )
    assert execution.error == "cannot fetch file with selector ['files', 'nope']"
    assert execution.error_type == "FileFetchError"


async def test_process_data_request_rendering(target: HttpTarget) -> None:
    auth = {"type": "api-key", "config": {"type": "bearer", "api_key": "sk-1"}}
    _outcome, execution = await run(
        http(
            target.url("/echo?x=1"),
            method="POST",
            authorization=auth,
            headers="X-Trace: {{#start.v#}}",
            params="q: {{#start.v#}}",
            body=body("json", {"value": '{"a": "{{#start.v#}}"}'}),
        ),
        "v1",
    )
    assert execution.result is not None
    assert execution.result.process_data["request"] == (
        "POST /echo?q=v1 HTTP/1.1\r\n"
        f"Host: 127.0.0.1:{target.port}\r\n"
        "X-Trace: v1\r\n"
        "Authorization: ***********\r\n"
        "Content-Type: application/json\r\n"
        "Content-Length: 11\r\n"
        "\r\n"
        '{"a": "v1"}'
    )
    assert target.requests[-1].query == {"q": ["v1"]}  # params replace the URL's query (httpx, so Dify too)


async def test_url_checks_and_methods(target: HttpTarget) -> None:
    outcome, execution = await run(http("{{#start.v#}}"))
    assert (execution.error, execution.error_type) == ("url is required", "InvalidURLError")
    outcome, execution = await run(http("ftp://example.com/"))
    assert execution.error == "url should start with http:// or https://"
    outcome, execution = await run(http(target.url(), method="options"))
    assert (execution.error, execution.error_type) == (
        "Invalid http method options",
        "InvalidHttpMethodError",
    )
    assert execution.result is not None
    assert execution.result.process_data["request"].startswith("OPTIONS /echo")
    for method in ("GET", "head", "Delete", "patch"):
        outcome, _ = await run(http(target.url(), method=method))
        assert outcome.status == "succeeded"
        assert target.requests[-1].method == method.upper()


def test_config_is_checked_at_import() -> None:
    def build(**data: Any) -> HttpRequestNode:
        return HttpRequestNode(
            NodeSpec(id="http", type="http-request", title="HTTP", data=http("http://x/", **data)["data"])
        )

    with pytest.raises(NodeConfigError, match="method"):
        build(method="trace")
    with pytest.raises(NodeConfigError, match="config"):
        build(authorization={"type": "api-key"})
    with pytest.raises(NodeConfigError):
        build(body={"type": "xml", "data": []})
    # Dify's lenient spellings: legacy string body, no-auth with a config, null items, UI timeout keys
    node_ = build(
        body={"type": "raw-text", "data": "legacy"}, authorization={"type": "no-auth", "config": {"x": 1}}
    )
    assert node_.config.body is not None
    assert node_.config.body.data[0].value == "legacy"
    assert node_.config.authorization.config is None
    build(body={"type": "form-data", "data": [{"key": "k", "type": "text", "value": None, "file": None}]})


# --- responses -------------------------------------------------------------------------------------------


async def test_response_headers_are_lower_cased_and_joined(target: HttpTarget) -> None:
    target.route(
        "/cookies",
        lambda _r: Reply(200, [("Set-Cookie", "a=1"), ("Set-Cookie", "b=2"), ("X-Mixed-Case", "v")], b"ok"),
    )
    outcome, _ = await run(http(target.url("/cookies")))
    headers = outcome.outputs["headers"]
    assert headers["set-cookie"] == "a=1, b=2"
    assert headers["x-mixed-case"] == "v"


async def test_text_decoding(target: HttpTarget) -> None:
    text = "Grüße, Ελλάδα"
    replies = {
        "/latin": Reply(200, [("Content-Type", "text/plain; charset=iso-8859-1")], "Grüße".encode("latin-1")),
        "/utf8": Reply(200, [("Content-Type", "text/plain")], text.encode()),
        "/guess": Reply(
            200,
            [("Content-Type", "text/plain")],
            ("Привет, мир! Это проверка определения кодировки текста." * 5).encode("cp1251"),
        ),
    }
    for path, reply in replies.items():
        target.route(path, lambda _r, reply=reply: reply)
    assert (await run(http(target.url("/latin"))))[0].outputs["body"] == "Grüße"
    assert (await run(http(target.url("/utf8"))))[0].outputs["body"] == text
    assert (await run(http(target.url("/guess"))))[0].outputs["body"].startswith("Привет, мир!")


async def test_file_responses_are_stored(target: HttpTarget, files: MemoryFiles) -> None:
    png = b"\x89PNG\r\n\x1a\n" + bytes(2000)
    target.route("/pic.png", lambda _r: Reply(200, [("Content-Type", "image/png")], png))
    target.route(
        "/report",
        lambda _r: Reply(
            200,
            [("Content-Type", "text/plain"), ("Content-Disposition", 'attachment; filename="r.csv"')],
            b"a,b",
        ),
    )
    outcome, _ = await run(http(target.url("/pic.png")), node_ports=ports(files))
    assert outcome.outputs["body"] == ""
    assert len(outcome.outputs["files"]) == 1
    saved = files.saved[-1]
    assert (saved["filename"], saved["mime_type"], files.blobs[saved["id"]]) == ("pic.png", "image/png", png)
    assert outcome.outputs["files"][0]["id"] == saved["id"]
    outcome, _ = await run(http(target.url("/report")), node_ports=ports(files))
    assert (files.saved[-1]["filename"], files.saved[-1]["mime_type"]) == ("r.csv", "text/csv")


async def test_a_file_response_without_file_storage_fails_clearly(target: HttpTarget) -> None:
    target.route("/pic", lambda _r: Reply(200, [("Content-Type", "image/png")], b"\x89PNG"))
    outcome, execution = await run(http(target.url("/pic")), node_ports=ports(None))
    assert outcome.status == "failed"
    assert execution.error == "The response is a file, but no file storage is configured to keep it"


async def test_size_limits_use_difys_messages(target: HttpTarget, files: MemoryFiles) -> None:
    target.route("/big-text", lambda _r: Reply(200, [("Content-Type", "text/plain")], b"x" * (3 * MIB // 2)))
    target.route("/endless", lambda _r: Reply(200, [("Content-Type", "text/plain")], zeros(1024 * MIB)))
    target.route("/big-file", lambda _r: Reply(200, [("Content-Type", "image/png")], zeros(3 * MIB)))
    outcome, execution = await run(http(target.url("/big-text")))
    assert execution.error == "Text size is too large, max size is 1.00 MB, but current size is 1.50 MB."
    assert execution.error_type == "ResponseSizeError"
    target.route(
        "/declared",
        lambda _r: Reply(
            200, [("Content-Type", "text/plain"), ("Content-Length", str(50 * MIB))], iter([b"x"])
        ),
    )
    outcome, execution = await run(http(target.url("/declared")))
    assert execution.error == "Text size is too large, max size is 1.00 MB, but current size is 50.00 MB."
    outcome, execution = await run(http(target.url("/endless")))
    assert execution.error == "Text size is too large, max size is 1.00 MB, but current size is over 1.00 MB."
    assert target.sent < 64 * MIB
    outcome, execution = await run(
        http(target.url("/big-file")), node_ports=ports(files, max_binary_size=2 * MIB)
    )
    assert execution.error == "File size is too large, max size is 2.00 MB, but current size is over 2.00 MB."
    # a file may be larger than text may
    outcome, _ = await run(http(target.url("/big-file")), node_ports=ports(files, max_binary_size=4 * MIB))
    assert outcome.status == "succeeded"
    assert len(files.blobs[files.saved[-1]["id"]]) == 3 * MIB


# --- status handling ------------------------------------------------------------------------------------


async def test_a_404_succeeds_without_strategy_or_retry(target: HttpTarget) -> None:
    outcome, _execution = await run(http(target.url("/status/404")))
    assert outcome.status == "succeeded"
    assert outcome.outputs["status_code"] == 404
    assert outcome.outputs["body"] == "status 404"


async def test_a_404_with_fail_branch_takes_it(target: HttpTarget) -> None:
    outcome, execution = await run(
        http(target.url("/status/404"), error_strategy="fail-branch"), fail_branch=True
    )
    assert outcome.status == "partial-succeeded"
    assert outcome.outputs == {"error": "Request failed with status code 404"}
    assert execution.state.status == "exception"
    assert execution.result is not None
    assert execution.result.outputs["error_type"] == "HTTPResponseCodeError"
    assert "request" in execution.result.process_data


async def test_a_404_with_retry_is_retried_then_fails_with_its_outputs(target: HttpTarget) -> None:
    retry = {"retry_enabled": True, "max_retries": 2, "retry_interval": 0}
    outcome, execution = await run(http(target.url("/status/404"), retry_config=retry))
    assert outcome.status == "failed"
    assert len(target.requests) == 3
    assert (execution.error, execution.error_type) == (
        "Request failed with status code 404",
        "HTTPResponseCodeError",
    )
    assert execution.result is not None
    assert execution.result.outputs["status_code"] == 404
    assert execution.result.outputs["body"] == "status 404"


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
async def test_retryable_statuses_fail_as_in_dify(target: HttpTarget, status: int) -> None:
    url = target.url(f"/status/{status}")
    outcome, execution = await run(http(url))
    assert outcome.status == "failed"
    assert (execution.error, execution.error_type) == (
        f"Reached maximum retries for URL {url}",
        "HttpRequestNodeError",
    )
    assert execution.result is not None
    assert execution.result.outputs == {}
    defaults = [
        {"key": "status_code", "type": "number", "value": 0},
        {"key": "body", "type": "string", "value": "n/a"},
    ]
    outcome, execution = await run(http(url, error_strategy="default-value", default_value=defaults))
    assert outcome.status == "partial-succeeded"
    assert outcome.outputs["body"] == "n/a"
    assert outcome.outputs["status_code"] == 0


async def test_redirects_are_followed(target: HttpTarget) -> None:
    outcome, _ = await run(http(target.url("/redirect?to=/status/201")))
    assert outcome.outputs["status_code"] == 201


# --- refusals and failures --------------------------------------------------------------------------------


async def test_refused_destinations_fail_the_node(target: HttpTarget) -> None:
    outcome, execution = await run(http(target.url()), node_ports=ports(allow=()))
    assert execution.error == (
        f"Access to '{target.url()}' was blocked by SSRF protection: 127.0.0.1 is in the non-public network 127.0.0.0/8"
    )
    assert execution.error_type == "HttpRequestNodeError"
    outcome, execution = await run(
        http("http://169.254.169.254/latest/meta-data/", error_strategy="fail-branch"), fail_branch=True
    )
    assert outcome.status == "partial-succeeded"
    assert outcome.outputs["error"].startswith(
        "Access to 'http://169.254.169.254/latest/meta-data/' was blocked"
    )
    assert target.requests == []


async def test_timeouts_come_from_the_node_or_the_settings(target: HttpTarget) -> None:
    import time

    def slow(_request: Any) -> Reply:
        time.sleep(1.5)
        return Reply(200, [], b"late")

    target.route("/slow", slow)
    outcome, execution = await run(http(target.url("/slow"), timeout={"connect": 1, "read": 1, "write": 1}))
    assert outcome.status == "failed"
    assert "timed out" in (execution.error or "")
    outcome, execution = await run(http(target.url("/slow")), node_ports=ports(max_read_timeout=0.5))
    assert outcome.status == "failed"
    assert "timed out" in (execution.error or "")
    outcome, _ = await run(http(target.url("/slow")), node_ports=ports(max_read_timeout=5))
    assert outcome.status == "succeeded"


async def test_without_an_http_port_the_node_fails_clearly() -> None:
    _outcome, execution = await run(http("http://example.com/"), node_ports=Ports())
    assert execution.error == "no HTTP client is configured for http-request nodes"


async def test_ssl_verify_comes_from_the_node_or_the_settings() -> None:
    import ssl

    import trustme

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    trustme.CA().issue_cert("127.0.0.1").configure_cert(context)  # a CA this process does not trust
    with HttpTarget("127.0.0.1", ssl_context=context) as tls:
        outcome, execution = await run(http(tls.url()))
        assert outcome.status == "failed"
        assert "certificate" in (execution.error or "")
        outcome, _ = await run(http(tls.url(), ssl_verify=False))
        assert outcome.status == "succeeded", outcome.error
        outcome, _ = await run(http(tls.url()), node_ports=ports(ssl_verify=False))
        assert outcome.status == "succeeded", outcome.error
        outcome, _ = await run(http(tls.url(), ssl_verify=True), node_ports=ports(ssl_verify=False))
        assert outcome.status == "failed"


async def test_head_responses_declare_a_length_they_do_not_send(target: HttpTarget) -> None:
    target.route(
        "/huge",
        lambda _r: Reply(200, [("Content-Type", "text/plain"), ("Content-Length", str(50 * MIB))], b""),
    )
    outcome, _ = await run(http(target.url("/huge"), method="head"))
    assert outcome.status == "succeeded", outcome.error
    assert outcome.outputs["body"] == ""
    assert outcome.outputs["headers"]["content-length"] == str(50 * MIB)
