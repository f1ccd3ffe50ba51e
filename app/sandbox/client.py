"""The worker's side of the sandbox: ``Sandbox.run_code`` for code nodes, ``Sandbox.call`` for named functions.

Admission and concurrency follow dify-sandbox: at most ``max_workers`` children run at once, at most
``max_queue`` requests are queued or running (more get "Too many requests"). Each request gets a memfd with its
payload and three pipes (result, stdout, stderr) that go straight to the child; the runner only forks,
confines, times out and reaps. Output is capped: stdout and stderr keep their head (and stderr its tail),
the result may not exceed ``protocol.RESULT_CAP``. Errors are shaped like Dify's sandbox errors ("process
exited with code 1" then the traceback; "error: timeout"), so DSL authors see what they know.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from collections.abc import Mapping
from typing import Any

import msgspec
import structlog

from app.sandbox import protocol
from app.sandbox.errors import (
    CodeExecutionFailed,
    FunctionFailed,
    FunctionOutOfMemory,
    FunctionTimedOut,
    ResultError,
    SandboxBusy,
    SandboxError,
    SandboxUnavailable,
)
from app.sandbox.probe import describe
from app.sandbox.process import RunnerProcess, close_all
from app.sandbox.protocol import CallRequest, Cancel, CodeRequest, Exited, Ready, Reply, Start
from app.settings import Settings

log = structlog.get_logger()

#: how long past its timeout a child may take to be reported before the runner counts as wedged
EXIT_GRACE = 10.0
#: a runner that failed to start is not tried again for this long
RESTART_BACKOFF = 5.0
#: results larger than this (characters of JSON) are parsed in a thread
LARGE_RESULT = 1 << 20


class SandboxConfig(msgspec.Struct, frozen=True, kw_only=True):
    level: str = "strict"
    timeout: float = 15.0
    max_workers: int = 4
    max_queue: int = 50
    memory_mb: int = 512
    preload: tuple[str, ...] = ()
    start_timeout: float = 120.0
    #: layers to treat as missing even if the host has them (tests of the refusal path)
    without: tuple[str, ...] = ()


class Execution(msgspec.Struct, kw_only=True):
    """What one child did."""

    exited: Exited
    reply: Reply | None
    reply_problem: str | None
    stdout: bytes
    stderr: bytes
    timeout: float
    memory_mb: int


class Sandbox:
    def __init__(self, config: SandboxConfig | None = None) -> None:
        self.config = config or SandboxConfig()
        self.ready: Ready | None = None
        self.refused: str | None = None
        self._runner: RunnerProcess | None = None
        self._start_lock = asyncio.Lock()
        self._failed_at = 0.0
        self._start_error: str | None = None
        self._in_flight = 0
        self._slots: asyncio.Queue[int] = asyncio.Queue()
        for slot in range(self.config.max_workers):
            self._slots.put_nowait(slot)

    @classmethod
    def from_settings(cls, settings: Settings) -> Sandbox:
        return cls(
            SandboxConfig(
                level=settings.code_sandbox,
                timeout=settings.code_execution_timeout,
                max_workers=settings.code_execution_max_workers,
                max_queue=settings.code_execution_max_queue,
                memory_mb=settings.code_execution_memory_mb,
                preload=settings.code_sandbox_preload,
            )
        )

    # -- life cycle ----------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the runner and learn what the host offers (logged once). Never raises: a host that cannot
        confine code makes code nodes fail with the reason."""
        if self.config.level == "off":
            self.refused = "code execution is disabled (CODE_SANDBOX=off)"
            log.warning("sandbox_off", detail=self.refused)
            return
        with contextlib.suppress(SandboxError):
            await self._ensure_runner()

    async def close(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.close()

    async def __aenter__(self) -> Sandbox:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def runner_pid(self) -> int | None:
        return self._runner.pid if self._runner is not None and self._runner.alive else None

    def describe(self) -> str:
        if self.refused is None and self.ready is None:
            return f"code nodes refused: {self._start_error or 'the sandbox runner is not started'}"
        return describe(self.config.level, self.ready, self.refused)

    async def _ensure_runner(self) -> RunnerProcess:
        if self.refused:
            raise SandboxUnavailable(f"Code execution service is unavailable: {self.refused}")
        if self._runner is not None and self._runner.alive:
            return self._runner
        async with self._start_lock:
            if self._runner is not None and self._runner.alive:
                return self._runner
            if self._start_error and time.monotonic() - self._failed_at < RESTART_BACKOFF:
                raise SandboxUnavailable(f"Code execution service is unavailable: {self._start_error}")
            config = self.config
            try:
                runner = await RunnerProcess.spawn(
                    config.level, config.max_workers, config.preload, config.start_timeout, config.without
                )
            except SandboxUnavailable as exc:
                self._start_error, self._failed_at = exc.message, time.monotonic()
                log.error("sandbox_start_failed", error=exc.message)
                raise
            ready = runner.ready
            assert ready is not None
            first = self.ready is None
            self.ready, self._start_error = ready, None
            if ready.refused:
                self.refused = ready.refused
                await runner.close()
                log.error("sandbox_refused", level=config.level, detail=ready.refused, layers=ready.layers)
                raise SandboxUnavailable(f"Code execution service is unavailable: {ready.refused}")
            if ready.preload_errors:
                log.warning("sandbox_preload_failed", errors=ready.preload_errors)
            (log.info if first else log.warning)(
                "sandbox_ready" if first else "sandbox_restarted",
                detail=self.describe(),
                runner_pid=ready.pid,
                runner_rss_mb=ready.rss_mb,
                preloaded=ready.preloaded,
            )
            self._runner = runner
            return runner

    # -- running ---------------------------------------------------------------------------------------------

    async def run_code(
        self,
        language: str,
        code: str,
        inputs: Mapping[str, Any],
        *,
        timeout: float | None = None,
        memory_mb: int | None = None,
    ) -> dict[str, Any]:
        """Run a code node's code: ``main(**inputs)`` (python3) or ``main(inputs)`` (javascript); returns the
        result object. Raises a :class:`SandboxError` with Dify's message on any failure."""
        if language not in ("python3", "javascript"):
            raise SandboxError(f"Unsupported language {language}")
        try:
            inputs_json = json.dumps(inputs, ensure_ascii=False)
        except (TypeError, ValueError, RecursionError) as exc:
            raise SandboxError(f"the inputs cannot be sent to the sandbox: {exc}") from None
        request = CodeRequest(language=language, code=code, inputs=inputs_json)  # type: ignore[arg-type]
        execution = await self.execute(request, timeout=timeout, memory_mb=memory_mb)
        self._raise_for_exit(execution)
        reply = execution.reply
        if reply is None or reply.json is None:
            raise ResultError(
                f"Failed to parse result: {execution.reply_problem or 'the code ended without a result'}"
            )
        try:
            # a big result parses off the event loop (64 MiB of JSON takes a while)
            big = len(reply.json) > LARGE_RESULT
            result = await asyncio.to_thread(json.loads, reply.json) if big else json.loads(reply.json)
        except (ValueError, RecursionError) as exc:
            raise ResultError(f"Failed to parse JSON response: {exc}.") from None
        if not isinstance(result, dict):
            raise ResultError(f"Result must be a dict, got {type(result).__name__}")
        return result

    async def call(
        self,
        function: str,
        args: Mapping[str, Any] | None = None,
        *,
        timeout: float | None = None,
        memory_mb: int | None = None,
    ) -> Any:
        """Run an allowlisted function (``app.sandbox.functions``) in a confined child; returns its value."""
        execution = await self.execute(
            CallRequest(function=function, args=dict(args or {})), timeout=timeout, memory_mb=memory_mb
        )
        reply = execution.reply
        if reply is not None and not reply.ok:
            raise FunctionFailed(reply.error or "the function failed", reply.error_type or "")
        if execution.exited.timed_out:
            raise FunctionTimedOut(
                f"timeout: {function} ran for more than {execution.timeout:g} s and was stopped"
            )
        if execution.exited.oom_killed:
            raise FunctionOutOfMemory(
                f"{function} needed more than {execution.memory_mb} MiB and was stopped"
            )
        self._raise_for_exit(execution)
        if reply is None:
            raise ResultError(
                f"no result from {function}: {execution.reply_problem or 'the child sent none'}"
            )
        return reply.value

    def _raise_for_exit(self, execution: Execution) -> None:
        exited = execution.exited
        if exited.exit_code == protocol.CONFINEMENT_FAILED:
            raise SandboxUnavailable(
                "Code execution service is unavailable: "
                + execution.stderr.decode("utf-8", "replace").strip()
            )
        if exited.exit_code == 0 and not exited.timed_out:
            return
        lines = [f"process exited with code {exited.exit_code}"]
        if exited.timed_out:
            lines.append(
                f"error: timeout (the code ran for more than {execution.timeout:g} s; CODE_EXECUTION_TIMEOUT)"
            )
        elif exited.oom_killed:
            lines.append(f"error: memory limit exceeded ({execution.memory_mb} MiB)")
        elif exited.detail:
            lines.append(f"error: {exited.detail}")
        stderr = execution.stderr.decode("utf-8", "replace")
        message = "\n".join(lines) + "\n" + stderr
        raise CodeExecutionFailed(message.rstrip("\n") + "\n")

    async def execute(
        self, request: protocol.Request, *, timeout: float | None = None, memory_mb: int | None = None
    ) -> Execution:
        """Run one request in a fresh confined child (admission, a slot, the child's whole life)."""
        if self.refused:
            raise SandboxUnavailable(f"Code execution service is unavailable: {self.refused}")
        if self._in_flight >= self.config.max_queue:
            raise SandboxBusy()
        timeout = self.config.timeout if timeout is None else timeout
        memory_mb = self.config.memory_mb if memory_mb is None else memory_mb
        try:
            payload = protocol.control_encoder.encode(request)
        except (TypeError, OverflowError, RecursionError, ValueError) as exc:
            raise SandboxError(f"the inputs cannot be sent to the sandbox: {exc}") from None
        self._in_flight += 1
        try:
            slot = await self._slots.get()
            try:
                runner = await self._ensure_runner()
                return await self._run(runner, slot, payload, timeout, memory_mb)
            finally:
                self._slots.put_nowait(slot)
        finally:
            self._in_flight -= 1

    async def _run(
        self, runner: RunnerProcess, slot: int, payload: bytes, timeout: float, memory_mb: int
    ) -> Execution:
        loop = asyncio.get_running_loop()
        request_fd = os.memfd_create("sluice-request", os.MFD_CLOEXEC)
        result_r, result_w = os.pipe2(os.O_CLOEXEC)
        out_r, out_w = os.pipe2(os.O_CLOEXEC)
        err_r, err_w = os.pipe2(os.O_CLOEXEC)
        ours = [result_r, out_r, err_r]
        theirs = [request_fd, result_w, out_w, err_w]
        request_id = runner.next_id()
        exited: asyncio.Future[Exited] = loop.create_future()
        try:
            _write_all(request_fd, payload)
            runner.pending[request_id] = exited
            start = Start(id=request_id, slot=slot, timeout=timeout, memory_mb=memory_mb)
            await runner.start(start, theirs)
        except BaseException:
            runner.pending.pop(request_id, None)
            close_all(ours)
            raise
        finally:
            close_all(theirs)
        readers = [
            asyncio.ensure_future(_drain(loop, result_r, protocol.RESULT_CAP + 4096)),
            asyncio.ensure_future(_drain(loop, out_r, protocol.STDOUT_CAP + 4096)),
            asyncio.ensure_future(_drain(loop, err_r, protocol.STDERR_CAP + protocol.STDERR_TAIL + 4096)),
        ]
        try:
            try:
                outcome = await asyncio.wait_for(asyncio.shield(exited), timeout + EXIT_GRACE)
            except TimeoutError:
                log.error("sandbox_runner_wedged", runner_pid=runner.pid, request_id=request_id)
                runner.kill()
                raise SandboxUnavailable(
                    "Code execution service is unavailable: the sandbox runner stopped answering"
                ) from None
            done, _ = await asyncio.wait(readers, timeout=2.0)
            (result, result_full), (stdout, _), (stderr, _) = (
                r.result() if r in done else (b"", False) for r in readers
            )
        except asyncio.CancelledError:
            if runner.alive and not exited.done():
                with contextlib.suppress(OSError):
                    runner.sock.send(protocol.control_encoder.encode(Cancel(request_id)))
            raise
        finally:
            runner.pending.pop(request_id, None)
            for reader in readers:
                reader.cancel()
        reply, problem = None, None
        if result_full:
            problem = f"the result is larger than {protocol.RESULT_CAP // (1024 * 1024)} MiB"
        elif result:
            try:
                reply = protocol.reply_decoder.decode(result)
            except msgspec.DecodeError:
                problem = "the result could not be read (did the code write to its descriptors?)"
        return Execution(
            exited=outcome,
            reply=reply,
            reply_problem=problem,
            stdout=stdout,
            stderr=stderr,
            timeout=timeout,
            memory_mb=memory_mb,
        )


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


async def _drain(loop: asyncio.AbstractEventLoop, fd: int, cap: int) -> tuple[bytes, bool]:
    """Everything a pipe delivers up to ``cap`` bytes; (data, True) when the writer sent more (we stop
    reading then: a writer that ignores its caps gets EPIPE)."""
    os.set_blocking(fd, False)
    buffer = bytearray()
    done: asyncio.Future[bool] = loop.create_future()

    def readable() -> None:
        if done.done():
            return
        try:
            while True:
                chunk = os.read(fd, 1 << 20)
                if not chunk:
                    done.set_result(False)
                    return
                buffer.extend(chunk)
                if len(buffer) > cap:
                    del buffer[cap:]
                    done.set_result(True)
                    return
        except BlockingIOError:
            return
        except OSError:
            done.set_result(False)

    loop.add_reader(fd, readable)
    try:
        full = await done
    finally:
        loop.remove_reader(fd)
        os.close(fd)
    return bytes(buffer), full
