"""What the worker, the runner and a confined child say to each other, and the fixed numbers they share.

Three channels, chosen so that no tenant's data ever passes through the runner (whose memory every later child
inherits by fork):

* control: an ``AF_UNIX`` ``SOCK_SEQPACKET`` socket between the worker and the runner. Each record is one msgpack
  message (the socket keeps record boundaries, so records need no length prefix); a ``Start`` record carries four
  file descriptors (``SCM_RIGHTS``) for the child: the request memfd, and the write ends of the result, stdout
  and stderr pipes. The runner answers ``Ready`` once and ``Exited`` per child.
* request: a memfd the worker filled with one msgpack ``Request`` (code and inputs, or a function and its
  arguments). Only the child reads it.
* result: a pipe the child writes one msgpack ``Reply`` to (the code's JSON text, or a function's value). User
  code cannot forge it by printing: prints go to the stdout pipe, which only feeds logs.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

#: The child's file descriptors after the runner arranges them.
REQUEST_FD, RESULT_FD = 3, 4
#: Exit code of a child whose confinement failed; it never ran the request.
CONFINEMENT_FAILED = 121
#: Exit code of a child that could not read its request.
BAD_REQUEST = 122

#: How much of stdout/stderr a child writes before it only keeps a tail (stderr) or drops the rest (stdout).
STDOUT_CAP = 256 * 1024
STDERR_CAP = 256 * 1024
STDERR_TAIL = 16 * 1024
#: Largest result a child may send (the code's JSON text or a function's msgpack value).
RESULT_CAP = 64 * 1024 * 1024

Language = Literal["python3", "javascript"]


class Start(msgspec.Struct, tag="start", kw_only=True):
    """worker -> runner: fork a child for request ``id`` (its fds ride along in the same record)."""

    id: int
    slot: int
    timeout: float
    memory_mb: int


class Cancel(msgspec.Struct, tag="cancel"):
    """worker -> runner: nobody waits for request ``id`` any more (a stopped run): kill its child."""

    id: int


class Shutdown(msgspec.Struct, tag="shutdown"):
    """worker -> runner: kill every child and exit."""


class Ready(msgspec.Struct, tag="ready", kw_only=True):
    """runner -> worker, once after start-up: what the host offers and whether the configured level is met."""

    pid: int
    level: str
    layers: dict[str, str]
    missing: list[str]
    refused: str | None
    preloaded: list[str]
    preload_errors: dict[str, str]
    baseline_vm_mb: float
    rss_mb: float


class Exited(msgspec.Struct, tag="exited", kw_only=True):
    """runner -> worker: child ``id`` is gone. ``exit_code`` is -1 when a signal ended it (as Go reports it)."""

    id: int
    exit_code: int
    signal: int = 0
    timed_out: bool = False
    oom_killed: bool = False
    cpu_seconds: float = 0.0
    max_rss_mb: float = 0.0
    duration: float = 0.0
    detail: str = ""


class CodeRequest(msgspec.Struct, tag="code", kw_only=True):
    """Inputs travel as JSON text, as in Dify's runner (big integers, NaN and all)."""

    language: Language
    code: str
    inputs: str


class CallRequest(msgspec.Struct, tag="call", kw_only=True):
    function: str
    args: dict[str, Any]


Request = CodeRequest | CallRequest
Control = Start | Cancel | Shutdown
Event = Ready | Exited


class Reply(msgspec.Struct, kw_only=True):
    """child -> worker over the result pipe. ``json`` for code (Dify serialises the return value to JSON text
    inside the sandbox), ``value`` for functions; ``error`` (``Type: message``) when a function raised."""

    ok: bool
    json: str | None = None
    value: Any = None
    error: str | None = None
    error_type: str | None = None


control_encoder = msgspec.msgpack.Encoder()
control_decoder = msgspec.msgpack.Decoder(Control)
event_decoder = msgspec.msgpack.Decoder(Event)
request_decoder = msgspec.msgpack.Decoder(Request)
reply_decoder = msgspec.msgpack.Decoder(Reply)
