"""Errors of the guarded client: a refusal by the guard is never confused with a failure of the far side.

``SSRFBlocked`` and ``InvalidURL`` mean nothing was sent (or, on a redirect, nothing more); ``UpstreamError``
and its subclasses mean the far side (or the network to it) failed; ``ResponseTooLarge`` means the body passed
the caller's byte cap and reading stopped there.
"""

from __future__ import annotations

from app.errors import SluiceError


class NetError(SluiceError):
    """A request to a user-supplied URL failed."""

    status, code = 502, "fetch_failed"


class SSRFBlocked(NetError):
    """Access to that URL was blocked by SSRF protection."""

    status, code = 400, "ssrf_blocked"

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"Access to '{url}' was blocked by SSRF protection: {reason}")
        self.url, self.reason = url, reason


class InvalidURL(NetError):
    """The URL is not valid."""

    status, code = 400, "invalid_url"

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"Invalid URL '{url}': {reason}")
        self.url, self.reason = url, reason


class InvalidRequest(NetError):
    """The request cannot be sent as given (a header that is not ASCII, a JSON body with NaN...)."""

    status, code = 400, "invalid_request"


class UpstreamError(NetError):
    """The remote server could not be reached or broke the exchange."""

    status, code = 502, "upstream_error"


class UpstreamTimeout(UpstreamError):
    """The remote server did not answer in time."""

    status, code = 504, "upstream_timeout"


class TooManyRedirects(UpstreamError):
    """The remote server redirected too many times."""

    code = "too_many_redirects"


class ResponseTooLarge(NetError):
    """The response body is larger than allowed."""

    status, code = 502, "response_too_large"

    def __init__(self, limit: int, received: int) -> None:
        super().__init__(f"The response body is larger than {limit} bytes (stopped after {received})")
        self.limit, self.received = limit, received
