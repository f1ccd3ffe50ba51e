"""What a confined child does: read its request, run user code (Dify's contract) or a named function, reply.

python3: the code is executed as a module, then ``main(**inputs)`` is called and its return value serialised
with ``json.dumps(..., indent=4)`` exactly as Dify's runner script does (so a datetime or a set fails with
Python's own ``TypeError``). javascript: QuickJS, a fresh context per run, ``main(inputs)`` with one object
argument and ``JSON.stringify`` of the result. The JSON text goes back on the result pipe, never on stdout, so
whatever the code prints (``<<RESULT>>`` included) cannot change the result. Errors print a traceback (or the
JavaScript stack) on stderr and exit 1, like a Python process with an uncaught exception.
"""

from __future__ import annotations

import builtins
import contextlib
import errno
import io
import json
import linecache
import os
import sys
import traceback
from collections.abc import Callable, Mapping
from typing import Any

from app.sandbox import protocol
from app.sandbox.protocol import CallRequest, CodeRequest, Reply

NETWORK_DISABLED = "network is disabled in code nodes"
CODE_FILENAME = "<code>"
_HERE = __file__


class CappedStream(io.TextIOBase):
    """stdout/stderr of the child: writes through up to ``cap`` bytes, then drops (stdout) or keeps only the
    last ``tail`` bytes, written out at exit (stderr, so that the traceback at the end survives)."""

    def __init__(self, fd: int, cap: int, tail: int = 0) -> None:
        self.fd, self.cap, self.tail = fd, cap, tail
        self.written = self.dropped = 0
        self.kept = bytearray()
        self.broken = False

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return "utf-8"

    @property
    def errors(self) -> str:  # type: ignore[override]
        return "backslashreplace"

    def fileno(self) -> int:
        return self.fd

    def isatty(self) -> bool:
        return False

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        data = text.encode("utf-8", "backslashreplace")
        room = self.cap - self.written
        if room > 0:
            self._out(data[:room])
            self.written += min(room, len(data))
            data = data[room:]
        if data:
            self.dropped += len(data)
            if self.tail:
                self.kept += data
                del self.kept[: -self.tail]
        return len(text)

    def _out(self, data: bytes) -> None:
        view = memoryview(data)
        while view and not self.broken:
            try:
                view = view[os.write(self.fd, view) :]
            except BrokenPipeError:
                self.broken = True

    def finish(self) -> None:
        if self.dropped:
            note = f"\n...[{self.dropped - len(self.kept)} bytes of output not shown]...\n".encode()
            self._out(note + bytes(self.kept))
            self.dropped = 0
            self.kept.clear()


def _disable_network() -> None:
    """The kernel already refuses sockets (seccomp, an empty network namespace, Landlock); this only turns the
    resulting errno into a sentence a DSL author understands."""
    import socket

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise PermissionError(errno.EPERM, NETWORK_DISABLED)

    for name in ("getaddrinfo", "gethostbyname", "gethostbyname_ex", "gethostbyaddr", "getnameinfo",
                 "create_connection", "create_server"):  # fmt: skip
        setattr(socket, name, refuse)
    original = socket.socket.__init__

    def init(
        self: socket.socket, family: Any = -1, type: Any = -1, proto: Any = -1, fileno: Any = None
    ) -> None:
        if fileno is None:  # socketpair() wraps existing descriptors: allowed
            refuse()
        original(self, family, type, proto, fileno)

    socket.socket.__init__ = init  # type: ignore[method-assign]


def _reseed() -> None:
    """Children are forked from one runner: give libraries that seeded at import fresh state."""
    numpy_random = sys.modules.get("numpy.random")
    if numpy_random is not None:
        numpy_random.seed()  # type: ignore[attr-defined]


def run_python(code: str, inputs_json: str) -> str:
    inputs = json.loads(inputs_json)
    linecache.cache[CODE_FILENAME] = (len(code), None, code.splitlines(True), CODE_FILENAME)
    namespace: dict[str, Any] = {"__name__": "__main__", "__builtins__": builtins}
    exec(compile(code, CODE_FILENAME, "exec"), namespace)  # noqa: S102 - this is the sandboxed child
    main = namespace.get("main")
    if main is None:
        raise NameError("name 'main' is not defined")
    return json.dumps(main(**inputs), indent=4)


_CONSOLE = """
globalThis.console = (() => {
  const text = (v) => typeof v === 'string' ? v : (() => { try { return JSON.stringify(v) ?? String(v) }
                                                       catch (e) { return String(v) } })();
  const out = (fd) => (...args) => __sluice_write(fd, args.map(text).join(' ') + '\\n');
  return {log: out(1), info: out(1), debug: out(1), warn: out(2), error: out(2)};
})();
"""


class JavaScriptError(Exception):
    """An uncaught JavaScript exception (its message is QuickJS's text with the stack)."""


def run_javascript(code: str, inputs_json: str, memory_mb: int, timeout: float) -> str:
    import _quickjs  # the C extension only: the ``quickjs`` wrapper starts a thread at import

    context = _quickjs.Context()
    # below the child's own limit (cgroup/RLIMIT_AS), so that QuickJS reports "out of memory" itself
    context.set_memory_limit(memory_mb * 1024 * 1024 * 3 // 4)
    # no QuickJS time limit: it forbids calls into Python (console.log); the runner's wall clock kills the child
    context.add_callable(
        "__sluice_write", lambda fd, text: (sys.stdout if fd == 1 else sys.stderr).write(text)
    )
    try:
        context.eval(_CONSOLE)
        context.eval(code)
        context.set("__sluice_inputs", inputs_json)
        text = context.eval("JSON.stringify(main(JSON.parse(__sluice_inputs)))")
    except (_quickjs.JSException, _quickjs.StackOverflow) as exc:
        raise JavaScriptError(str(exc)) from None
    return text if isinstance(text, str) else "undefined"


def _print_error(exc: BaseException, memory_mb: int) -> None:
    if isinstance(exc, JavaScriptError):
        sys.stderr.write(str(exc).rstrip("\n") + "\n")
        return
    report = traceback.TracebackException.from_exception(exc)
    _hide_harness(report)
    sys.stderr.write("".join(report.format()))
    if isinstance(exc, MemoryError):
        sys.stderr.write(f"error: memory limit exceeded ({memory_mb} MiB)\n")


def _hide_harness(report: traceback.TracebackException, seen: set[int] | None = None) -> None:
    """Drop the harness's own frames (noise to a DSL author), in chained exceptions too."""
    seen = set() if seen is None else seen
    if id(report) in seen:
        return
    seen.add(id(report))
    report.stack = traceback.StackSummary.from_list([f for f in report.stack if f.filename != _HERE])
    for chained in (report.__cause__, report.__context__):
        if chained is not None:
            _hide_harness(chained, seen)


def warm_up() -> None:
    """Walk the python3 path once, results thrown away, in a pre-forked child before its request: the pages
    that path writes (reference counts, caches) are copied from the runner now instead of during the run."""
    text = run_python("def main(a):\n    return {'a': [a, str(a), a / 2]}\n", '{"a": 1}')
    protocol.control_encoder.encode(Reply(ok=True, json=text))
    protocol.request_decoder.decode(
        protocol.control_encoder.encode(CodeRequest(language="python3", code="", inputs='{"a": 1}'))
    )
    linecache.cache.pop(CODE_FILENAME, None)
    with contextlib.suppress(Exception):  # no QuickJS here: javascript runs will say so
        run_javascript("function main({a}) { return {a: [a, String(a)]} }", '{"a": 1}', 16, 1.0)


def _reply(reply: Reply) -> None:
    data = protocol.control_encoder.encode(reply)
    view = memoryview(data)
    while view:
        view = view[os.write(protocol.RESULT_FD, view) :]


def serve(functions: Mapping[str, Callable[..., Any]], *, memory_mb: int, timeout: float) -> int:
    """Run the request on fd 3, answer on fd 4; the exit code for the child."""
    out = CappedStream(1, protocol.STDOUT_CAP)
    err = CappedStream(2, protocol.STDERR_CAP, protocol.STDERR_TAIL)
    sys.stdout, sys.stderr = out, err  # type: ignore[assignment]
    try:
        size = os.fstat(protocol.REQUEST_FD).st_size
        request = protocol.request_decoder.decode(os.pread(protocol.REQUEST_FD, size, 0))
        os.close(protocol.REQUEST_FD)
    except Exception as exc:  # a broken request is the worker's bug, not the user's
        err.write(f"error: could not read the request: {exc}\n")
        err.finish()
        return protocol.BAD_REQUEST
    _disable_network()
    _reseed()
    code = 0
    try:
        if isinstance(request, CodeRequest):
            if request.language == "javascript":
                text = run_javascript(request.code, request.inputs, memory_mb, timeout)
            else:
                text = run_python(request.code, request.inputs)
            reply = Reply(ok=True, json=text)
        else:
            reply = _call(functions, request)
    except SystemExit as exc:  # the code called sys.exit(): end like a process would, with no result
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        reply = None
    except BaseException as exc:
        _print_error(exc, memory_mb)
        code = 1
        reply = (
            Reply(ok=False, error=f"{type(exc).__name__}: {exc}", error_type=type(exc).__name__)
            if isinstance(request, CallRequest)
            else None
        )
    try:
        if reply is not None:
            if reply.json is not None and len(reply.json) > protocol.RESULT_CAP:
                raise ValueError(f"the result is larger than {protocol.RESULT_CAP // (1024 * 1024)} MiB")
            _reply(reply)
    except Exception as exc:
        err.write(f"error: could not send the result: {exc}\n")
        code = code or 1
    out.finish()
    err.finish()
    return code


def _call(functions: Mapping[str, Callable[..., Any]], request: CallRequest) -> Reply:
    function = functions.get(request.function)
    if function is None:
        raise LookupError(f"no sandbox function named {request.function!r}")
    return Reply(ok=True, value=function(**request.args))
