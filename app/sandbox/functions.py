"""Named functions a child may run besides user code: the allowlist behind ``Sandbox.call``.

A function is registered with :func:`sandboxed` in one of ``MODULES``; the runner imports every module in that
list before it forks anything, so the function (and whatever it imports: Jinja2, pypdf, python-docx...) is
already in memory in each child and needs no file access. Arguments arrive as keyword arguments decoded from
msgpack (bytes stay bytes); the return value goes back the same way. Registered so far: document text
extraction (``files.extract_text``, the document-extractor node), Jinja2 rendering (``templates.render``,
template-transform and LLM prompts) and the parsing stages of knowledge indexing (``knowledge.extract``,
``knowledge.clean``, ``knowledge.split``).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

#: modules the runner imports at start; each registers its functions
MODULES: tuple[str, ...] = (
    "app.sandbox.functions",
    "app.files.text_extraction",
    "app.workflows.template_rendering",
    "app.knowledge.indexing.parsing",
)

REGISTRY: dict[str, Callable[..., Any]] = {}


def sandboxed(name: str) -> Callable[[F], F]:
    def register(fn: F) -> F:
        REGISTRY[name] = fn
        return fn

    return register


@sandboxed("sandbox.echo")
def echo(**args: Any) -> dict[str, Any]:
    """Returns its arguments: a round trip through the channel (bytes included)."""
    return args


@sandboxed("sandbox.selftest")
def selftest() -> dict[str, Any]:
    """What a confined child sees of itself: who it is, and which doors are shut."""
    import ctypes
    import socket

    libc = ctypes.CDLL(None, use_errno=True)

    def denied(action: Callable[[], Any]) -> str:
        try:
            action()
        except OSError as exc:
            return f"denied ({exc.strerror})"
        return "allowed"

    return {
        "uid": os.getuid(),
        "gid": os.getgid(),
        "no_new_privs": libc.prctl(39, 0, 0, 0, 0),  # PR_GET_NO_NEW_PRIVS
        "seccomp": libc.prctl(21, 0, 0, 0, 0),  # PR_GET_SECCOMP: 2 = filter
        "environ": dict(os.environ),
        "read_etc_passwd": denied(lambda: open("/etc/passwd", "rb").close()),
        "socket": denied(lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM).close()),
        # an unnamed file (O_TMPFILE) leaves nothing behind if some host lets it through
        "write_tmp": denied(lambda: os.close(os.open("/tmp", os.O_TMPFILE | os.O_WRONLY, 0o600))),  # noqa: S108
        "fork": denied(os.fork),
    }
