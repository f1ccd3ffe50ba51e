"""The worker's handle on one runner process: spawning it clean, its control socket, its events.

The runner is spawned with ``env={}`` and only its control socket as stdin, so nothing secret in the worker
(``DATABASE_URL``, API keys, tokens) ever reaches its memory, and therefore never any child's. If the runner
dies, every request it was serving fails at once with :class:`SandboxCrashed`; the client starts a new one
for the next request.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import socket
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import structlog

from app.sandbox import protocol
from app.sandbox.errors import SandboxCrashed, SandboxUnavailable
from app.sandbox.protocol import Exited, Ready, Shutdown, Start

log = structlog.get_logger()

#: what the runner inherits from the worker's environment: nothing
EMPTY_ENVIRONMENT: dict[str, str] = {}
#: the directory that holds the ``app`` package (the runner is started with ``-m`` from there)
SOURCE_ROOT = Path(__file__).resolve().parents[2]


def runner_command(
    level: str, slots: int, preload: Sequence[str], *, probe: bool = False, without: Sequence[str] = ()
) -> list[str]:
    command = [sys.executable, "-E", "-s", "-B", "-m", "app.sandbox.runner", "--level", level]
    command += ["--slots", str(slots), "--preload", ",".join(preload), "--without", ",".join(without)]
    return [*command, "--probe"] if probe else command


class RunnerProcess:
    def __init__(self, proc: subprocess.Popen[bytes], sock: socket.socket) -> None:
        self.proc, self.sock = proc, sock
        self.ready: Ready | None = None
        self.pending: dict[int, asyncio.Future[Exited]] = {}
        self.alive = True
        self.closing = False
        self._ids = itertools.count(1)
        self._loop: asyncio.AbstractEventLoop | None = None

    @classmethod
    async def spawn(
        cls, level: str, slots: int, preload: Sequence[str], start_timeout: float, without: Sequence[str] = ()
    ) -> RunnerProcess:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            # from the loop's own thread, never a helper thread: the runner dies when the thread that
            # started it exits (PR_SET_PDEATHSIG); the fork+exec itself takes a few milliseconds
            proc = subprocess.Popen(  # noqa: S603, ASYNC220 - our own interpreter and module
                runner_command(level, slots, preload, without=without),
                stdin=theirs.fileno(),
                stdout=subprocess.DEVNULL,
                env=EMPTY_ENVIRONMENT,
                cwd=SOURCE_ROOT,
                close_fds=True,
            )
        finally:
            theirs.close()
        runner = cls(proc, ours)
        ours.setblocking(False)
        loop = asyncio.get_running_loop()
        try:
            first = await asyncio.wait_for(loop.sock_recv(ours, 65536), start_timeout)
        except (TimeoutError, OSError) as exc:
            runner.kill()
            raise SandboxUnavailable(f"the sandbox runner did not start: {exc or 'timeout'}") from None
        if not first:
            code = await asyncio.to_thread(proc.wait)
            runner.alive = False
            raise SandboxUnavailable(f"the sandbox runner exited at start (exit code {code})")
        event = protocol.event_decoder.decode(first)
        if not isinstance(event, Ready):
            runner.kill()
            raise SandboxUnavailable("the sandbox runner did not report ready")
        runner.ready = event
        runner._loop = loop
        loop.add_reader(ours.fileno(), runner._on_readable)
        return runner

    def next_id(self) -> int:
        return next(self._ids)

    async def start(self, start: Start, fds: Sequence[int]) -> None:
        """Send a Start record with the child's descriptors (the caller closes its copies)."""
        data = protocol.control_encoder.encode(start)
        while True:
            if not self.alive:
                raise SandboxCrashed()
            try:
                socket.send_fds(self.sock, [data], list(fds))
                return
            except BlockingIOError:
                await asyncio.sleep(0.001)
            except OSError as exc:
                self._died(f"control socket: {exc}")
                raise SandboxCrashed() from None

    def _on_readable(self) -> None:
        while True:
            try:
                data = self.sock.recv(65536)
            except BlockingIOError:
                return
            except OSError as exc:
                self._died(f"control socket: {exc}")
                return
            if not data:
                self._died("the runner exited")
                return
            event = protocol.event_decoder.decode(data)
            if isinstance(event, Exited):
                future = self.pending.pop(event.id, None)
                if future is not None and not future.done():
                    future.set_result(event)

    def _died(self, reason: str) -> None:
        if not self.alive:
            return
        self.alive = False
        if self._loop is not None:
            with contextlib.suppress(Exception):
                self._loop.remove_reader(self.sock.fileno())
        code = self.proc.poll()
        if not self.closing:
            log.warning("sandbox_runner_died", reason=reason, exit_code=code, in_flight=len(self.pending))
        for future in self.pending.values():
            if not future.done():
                future.set_exception(SandboxCrashed())
        self.pending.clear()
        self.sock.close()
        if code is None:
            self.kill()

    def kill(self) -> None:
        """Stop at once: its children die with it (PR_SET_PDEATHSIG)."""
        with contextlib.suppress(ProcessLookupError):
            self.proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)
        self._died("killed")

    async def close(self) -> None:
        self.closing = True
        if self.alive:
            with contextlib.suppress(OSError):
                self.sock.send(protocol.control_encoder.encode(Shutdown()))
        try:
            await asyncio.wait_for(asyncio.to_thread(self.proc.wait), 5)
        except TimeoutError:
            pass
        self.kill()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def __repr__(self) -> str:
        return f"RunnerProcess(pid={self.pid}, alive={self.alive})"


def close_all(fds: Sequence[int]) -> None:
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)
