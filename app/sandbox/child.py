"""A forked child's life before and around the harness: its descriptors, its confinement, its request.

Two ways in. ``cold``: forked for a request that has arrived (its descriptors came with the fork). ``warm``:
forked ahead of time for a slot, it confines itself at once (every layer but the per-request limits), then
waits on a private socket for the runner to hand it a request and the request's descriptors. Warm children
take the fork and the confinement off a request's path; they exist before any request, so they hold no
tenant's data either. Both end in :func:`app.sandbox.harness.serve` and ``os._exit``.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import resource
import socket
from collections.abc import Sequence
from typing import NoReturn

from app.sandbox import harness, protocol
from app.sandbox.confine import ConfinementError, Jail
from app.sandbox.functions import REGISTRY
from app.sandbox.protocol import Start

_HIGH_FD = 20  # below NOFILE (64): where descriptors wait while 0-4 are arranged


def _arrange(devnull: int, fds: Sequence[int]) -> None:
    """0 = /dev/null, 1 = stdout pipe, 2 = stderr pipe, 3 = request memfd, 4 = result pipe; nothing else."""
    request, result, out, err = (fcntl.fcntl(fd, fcntl.F_DUPFD, _HIGH_FD) for fd in fds)
    null = fcntl.fcntl(devnull, fcntl.F_DUPFD, _HIGH_FD)
    for source, target in ((null, 0), (out, 1), (err, 2), (request, 3), (result, 4)):
        os.dup2(source, target)
    os.closerange(5, resource.getrlimit(resource.RLIMIT_NOFILE)[0])


def _fail(message: str) -> NoReturn:
    try:
        os.write(2, f"error: the sandbox could not confine this run: {message}\n".encode())
    finally:
        os._exit(protocol.CONFINEMENT_FAILED)


def _serve(start: Start) -> NoReturn:
    code = 1
    try:
        code = harness.serve(REGISTRY, memory_mb=start.memory_mb, timeout=start.timeout)
    finally:
        os._exit(code)


def cold(jail: Jail, devnull: int, start: Start, fds: Sequence[int]) -> NoReturn:  # pragma: no cover - child
    try:
        os.setsid()
        _arrange(devnull, fds)
        jail.apply(start.slot, start.timeout, start.memory_mb)
    except BaseException as exc:
        _fail(str(exc))
    _serve(start)


def warm(jail: Jail, devnull: int, slot: int, channel: socket.socket) -> NoReturn:  # pragma: no cover - child
    try:
        os.setsid()
        # until a request comes: 0 = /dev/null (never the runner's control socket), 2 = the runner's stderr
        os.dup2(devnull, 0)
        waiting = fcntl.fcntl(channel.fileno(), fcntl.F_DUPFD, _HIGH_FD)
        keep = {0, 1, 2, waiting, devnull}
        for fd in os.listdir("/proc/self/fd"):
            if int(fd) not in keep:
                try:
                    os.close(int(fd))
                except OSError:
                    pass
        mapped = jail.enter(slot)
    except BaseException as exc:
        _fail(str(exc))
    with contextlib.suppress(Exception):  # only an optimisation
        harness.warm_up()
    inbox = socket.socket(fileno=waiting)
    try:
        data, fds, _, _ = socket.recv_fds(inbox, 65536, 8)
    except OSError:
        os._exit(0)
    if not data or len(fds) != 4:  # the runner is stopping
        os._exit(0)
    start = protocol.control_decoder.decode(data)
    if not isinstance(start, Start):
        os._exit(protocol.BAD_REQUEST)
    try:
        _arrange(devnull, fds)
        jail.limit(start.timeout, start.memory_mb, mapped)
    except (OSError, ConfinementError) as exc:
        _fail(str(exc))
    _serve(start)
