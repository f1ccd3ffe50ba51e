"""The guarded client against real loopback servers: what it refuses, where it connects, how it redirects."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from app.net.errors import InvalidURL, SSRFBlocked, TooManyRedirects, UpstreamError, UpstreamTimeout
from tests.net.conftest import make_client
from tests.support.http_target import HttpTarget, Reply
from tests.support.net_fakes import FakeResolver, LoopbackOnlyBackend

LOOPBACK = ["127.0.0.0/8"]


async def get(client, url: str, **options):  # type: ignore[no-untyped-def]
    return await client.request(options.pop("method", "GET"), url, max_bytes=1 << 20, **options)


# --- refusals: nothing is sent ------------------------------------------------------------------------


async def test_loopback_is_refused_without_the_allowlist(
    target: HttpTarget, backend: LoopbackOnlyBackend
) -> None:
    with pytest.raises(SSRFBlocked) as blocked:
        await get(make_client(backend), target.url())
    assert str(blocked.value).startswith(f"Access to '{target.url()}' was blocked by SSRF protection: ")
    assert "127.0.0.0/8" in str(blocked.value)
    assert target.requests == []
    assert backend.connects == []
    # ... and reached with it
    response = await get(make_client(backend, LOOPBACK), target.url())
    assert response.status_code == 200
    assert len(target.requests) == 1


async def test_metadata_address_is_refused_even_with_loopback_allowed(backend: LoopbackOnlyBackend) -> None:
    for url in (
        "http://169.254.169.254/latest/meta-data/",
        "http://[fd00:ec2::254]/",
        "http://169.254.170.2/v2",
    ):
        with pytest.raises(SSRFBlocked):
            await get(make_client(backend, LOOPBACK), url)
    assert backend.connects == []


@pytest.mark.parametrize("host", ["localhost", "foo.localhost", "LocalHost.", "metadata.google.internal"])
async def test_local_names_are_refused(host: str, target: HttpTarget, backend: LoopbackOnlyBackend) -> None:
    resolver = FakeResolver({host.lower().rstrip("."): [["127.0.0.1"]]})
    with pytest.raises(SSRFBlocked, match="host name"):
        await get(make_client(backend, LOOPBACK, resolver), target.url(host=host))
    assert resolver.calls == []
    assert target.requests == []


@pytest.mark.parametrize("host", ["2130706433", "127.1", "0x7f.1", "[::ffff:127.0.0.1]"])
async def test_odd_spellings_of_loopback(host: str, target: HttpTarget, backend: LoopbackOnlyBackend) -> None:
    resolver = FakeResolver({})  # a literal address is never looked up
    with pytest.raises(SSRFBlocked, match=r"127.0.0.1"):
        await get(make_client(backend, resolver=resolver), target.url(host=host))
    assert target.requests == []
    assert backend.connects == []
    # with loopback allowed, the spelling reaches 127.0.0.1 itself (normalised, not passed through)
    response = await get(make_client(backend, LOOPBACK, resolver), target.url(host=host))
    assert response.status_code == 200
    assert backend.connects == [("127.0.0.1", target.port)]
    assert resolver.calls == []


async def test_octal_spelling_is_refused(target: HttpTarget, backend: LoopbackOnlyBackend) -> None:
    for allow in ([], LOOPBACK):
        with pytest.raises((SSRFBlocked, InvalidURL)):
            await get(make_client(backend, allow), target.url(host="0177.0.0.1"))
    assert target.requests == []
    assert backend.connects == []


@pytest.mark.parametrize("url", ["ftp://example.com/", "file:///etc/passwd", "gopher://127.0.0.1/"])
async def test_only_http_and_https(url: str, backend: LoopbackOnlyBackend) -> None:
    with pytest.raises((SSRFBlocked, InvalidURL)):
        await get(make_client(backend, LOOPBACK), url)
    assert backend.connects == []


async def test_userinfo_does_not_change_the_host(target: HttpTarget, backend: LoopbackOnlyBackend) -> None:
    """``http://127.0.0.1:port\\@evil.test/``: the one parser says the host is evil.test; that is what is
    checked and what would be connected to."""
    resolver = FakeResolver({"evil.test": [["10.0.0.1"]]})
    with pytest.raises(SSRFBlocked, match=r"10.0.0.1"):
        await get(make_client(backend, LOOPBACK, resolver), f"http://127.0.0.1:{target.port}\\@evil.test/")
    assert resolver.calls == ["evil.test"]
    assert target.requests == []


async def test_port_allowlist(target: HttpTarget, backend: LoopbackOnlyBackend) -> None:
    with pytest.raises(SSRFBlocked, match="SSRF_ALLOWED_PORTS"):
        await get(make_client(backend, LOOPBACK, allowed_ports=[80, 443]), target.url())
    assert target.requests == []
    response = await get(make_client(backend, LOOPBACK, allowed_ports=[target.port]), target.url())
    assert response.status_code == 200


# --- resolution: once, all answers, pinned --------------------------------------------------------------


@pytest.fixture
def twin_targets() -> Iterator[tuple[HttpTarget, HttpTarget]]:
    """Two servers on the same port, one on 127.0.0.2 and one on 127.0.0.3."""
    first = HttpTarget("127.0.0.2").start()
    second = HttpTarget("127.0.0.3", port=first.port).start()
    yield first, second
    first.stop()
    second.stop()


async def test_a_second_dns_answer_cannot_rebind(
    twin_targets: tuple[HttpTarget, HttpTarget], backend: LoopbackOnlyBackend
) -> None:
    """The name answers 127.0.0.2 (allowed, standing in for a public address) first and 127.0.0.3 (refused)
    on every later lookup. The request goes to .2; .3 never hears from us, because the connection is pinned
    to the vetted answer and nothing looks the name up again."""
    allowed, refused = twin_targets
    resolver = FakeResolver({"rebind.test": [["127.0.0.2"], ["127.0.0.3"]]})
    client = make_client(backend, ["127.0.0.2/32"], resolver)
    response = await get(client, f"http://rebind.test:{allowed.port}/echo")
    assert response.status_code == 200
    assert resolver.calls == ["rebind.test"]
    assert backend.connects == [("127.0.0.2", allowed.port)]
    assert [r.header("Host") for r in allowed.requests] == [f"rebind.test:{allowed.port}"]
    assert refused.requests == []
    # the next request looks the name up again and is refused before connecting
    with pytest.raises(SSRFBlocked, match=r"127.0.0.3"):
        await get(client, f"http://rebind.test:{allowed.port}/echo")
    assert refused.requests == []
    assert backend.connects == [("127.0.0.2", allowed.port)]


async def test_a_name_with_one_private_answer_is_refused(
    twin_targets: tuple[HttpTarget, HttpTarget], backend: LoopbackOnlyBackend
) -> None:
    allowed, refused = twin_targets
    resolver = FakeResolver(
        {"mixed.test": [["127.0.0.2", "127.0.0.3"]], "public.test": [["8.8.8.8", "10.0.0.1"]]}
    )
    client = make_client(backend, ["127.0.0.2/32"], resolver)
    with pytest.raises(SSRFBlocked, match=r"'mixed.test' resolves to 127.0.0.3"):
        await get(client, f"http://mixed.test:{allowed.port}/echo")
    with pytest.raises(SSRFBlocked, match=r"10.0.0.1"):
        await get(client, "http://public.test/")
    assert allowed.requests == []
    assert refused.requests == []
    assert backend.connects == []


async def test_unknown_names_are_upstream_errors(backend: LoopbackOnlyBackend) -> None:
    with pytest.raises(UpstreamError, match=r"Could not resolve 'nowhere.test'") as error:
        await get(make_client(backend, LOOPBACK, FakeResolver({})), "http://nowhere.test/")
    assert not isinstance(error.value, SSRFBlocked)


async def test_refused_connection_is_an_upstream_error_not_a_block(target: HttpTarget, backend) -> None:  # type: ignore[no-untyped-def]
    port = target.port
    target.stop()
    with pytest.raises(UpstreamError) as error:
        await get(make_client(backend, LOOPBACK), f"http://127.0.0.1:{port}/")
    assert not isinstance(error.value, SSRFBlocked)


async def test_read_timeout_is_reported(target: HttpTarget, backend: LoopbackOnlyBackend) -> None:
    def slow(_request):  # type: ignore[no-untyped-def]
        import time

        time.sleep(1.0)
        return Reply(200, [], b"late")

    target.route("/slow", slow)
    client = make_client(backend, LOOPBACK)
    with pytest.raises(UpstreamTimeout, match="timed out"):
        await client.request("GET", target.url("/slow"), max_bytes=100, timeout=0.2)


async def test_environment_proxies_are_ignored(
    target: HttpTarget, backend: LoopbackOnlyBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    with HttpTarget("127.0.0.1") as proxy:
        for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "HTTPS_PROXY"):
            monkeypatch.setenv(name, proxy.url("/"))
        response = await get(make_client(backend, LOOPBACK), target.url())
        assert response.status_code == 200
        assert proxy.requests == []
        assert len(target.requests) == 1


# --- redirects ------------------------------------------------------------------------------------------


def redirect(target: HttpTarget, to: str, code: int = 302) -> str:
    from urllib.parse import quote

    return target.url(f"/redirect?code={code}&to={quote(to, safe='')}")


async def test_redirect_to_a_refused_host_is_refused(
    target: HttpTarget, backend: LoopbackOnlyBackend
) -> None:
    with HttpTarget("127.0.0.2") as other:
        client = make_client(backend, ["127.0.0.1/32"])
        for to in (
            other.url(),
            f"http://localhost:{other.port}/",
            "http://169.254.169.254/",
            "file:///etc/passwd",
        ):
            with pytest.raises((SSRFBlocked, InvalidURL)) as blocked:
                await get(client, redirect(target, to))
            assert to.split("//")[1].split("/")[0] in str(blocked.value) or "file" in str(blocked.value)
        assert other.requests == []
        assert len(target.requests) == 4  # only the redirecting hops arrived
        assert backend.connects == [("127.0.0.1", target.port)] * 4


async def test_redirects_are_followed_and_rechecked_up_to_ten(target: HttpTarget, backend) -> None:  # type: ignore[no-untyped-def]
    client = make_client(backend, LOOPBACK)
    url = target.url("/echo")
    for _ in range(10):
        url = redirect(target, url)
    response = await get(client, url)
    assert response.status_code == 200
    assert response.url == target.url("/echo")
    target.reset()
    with pytest.raises(TooManyRedirects):
        await get(client, redirect(target, url))
    assert len(target.requests) == 11


async def test_authorization_is_dropped_when_the_host_changes(
    target: HttpTarget, backend: LoopbackOnlyBackend
) -> None:
    with HttpTarget("127.0.0.2") as other:
        client = make_client(backend, LOOPBACK)
        headers = {"Authorization": "Bearer s3cret", "X-Api-Key": "k3y", "X-Plain": "kept"}
        await get(client, redirect(target, other.url()), headers=headers, secret_headers=["X-Api-Key"])
        moved = other.requests[-1]
        assert moved.header("Authorization") is None
        assert moved.header("X-Api-Key") is None
        assert moved.header("X-Plain") == "kept"
        assert target.requests[-1].header("Authorization") == "Bearer s3cret"
        # the same host keeps them
        await get(
            client, redirect(target, target.url("/echo")), headers=headers, secret_headers=["X-Api-Key"]
        )
        assert target.requests[-1].path == "/echo"
        assert target.requests[-1].header("Authorization") == "Bearer s3cret"
        assert target.requests[-1].header("X-Api-Key") == "k3y"


async def test_303_becomes_get_and_307_keeps_the_body(
    target: HttpTarget, backend: LoopbackOnlyBackend
) -> None:
    client = make_client(backend, LOOPBACK)
    await get(client, redirect(target, "/echo", 303), method="POST", json={"a": 1})
    final = target.requests[-1]
    assert (final.method, final.body, final.header("Content-Type")) == ("GET", b"", None)
    await get(client, redirect(target, "/echo", 307), method="POST", json={"a": 1})
    final = target.requests[-1]
    assert (final.method, final.body, final.header("Content-Type")) == (
        "POST",
        b'{"a":1}',
        "application/json",
    )


async def test_redirects_can_be_left_to_the_caller(target: HttpTarget, backend: LoopbackOnlyBackend) -> None:
    response = await get(make_client(backend, LOOPBACK), redirect(target, "/echo"), follow_redirects=False)
    assert response.status_code == 302
    assert response.headers["location"] == "/echo"


async def test_concurrent_requests_do_not_share_pins(backend: LoopbackOnlyBackend) -> None:
    with HttpTarget("127.0.0.2") as a, HttpTarget("127.0.0.3") as b:
        resolver = FakeResolver({"a.test": [["127.0.0.2"]], "b.test": [["127.0.0.3"]]})
        client = make_client(backend, LOOPBACK, resolver)
        await asyncio.gather(
            *[get(client, f"http://a.test:{a.port}/echo") for _ in range(5)],
            *[get(client, f"http://b.test:{b.port}/echo") for _ in range(5)],
        )
        assert len(a.requests) == 5
        assert len(b.requests) == 5


async def test_requests_that_cannot_be_sent_fail_clearly(
    target: HttpTarget, backend: LoopbackOnlyBackend
) -> None:
    from app.net.errors import InvalidRequest

    client = make_client(backend, LOOPBACK)
    with pytest.raises(InvalidRequest, match="ascii"):
        await get(client, target.url(), headers={"X-Name": "Zoë"})
    with pytest.raises(InvalidRequest, match="JSON"):
        await get(client, target.url(), method="POST", json={"a": float("nan")})
    target.route("/bad-location", lambda _r: Reply(302, [("Location", "http://[::1")], b""))
    with pytest.raises(UpstreamError, match="location"):  # a broken server, not a refusal
        await get(client, target.url("/bad-location"))
    assert [r.path for r in target.requests] == ["/bad-location"]
