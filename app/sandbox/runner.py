"""The sandbox runner ("zygote"): ``python -m app.sandbox.runner``, started by the worker, forks confined children.

It starts with an empty environment and no inherited descriptors besides its control socket (fd 0), sets a few
constant variables (one thread per numeric library, UTF-8), pre-imports an allowlist of modules (plus heavy
packages named with ``--preload``) and the named functions, probes the host's confinement layers, and reports
``Ready``. Then, single-threaded, it serves ``Start`` records: fork, arrange the child's descriptors, confine
(:mod:`app.sandbox.confine`), run (:mod:`app.sandbox.harness`). It kills a child at its wall-clock timeout,
reaps it through a pidfd and reports ``Exited``. It never reads a request or a result: those travel on
descriptors the worker hands to the child directly, so no tenant's data sits in memory that later children
inherit. ``--probe`` prints the ``Ready`` report as JSON and exits (for ``/readyz``).
"""

from __future__ import annotations

import argparse
import ctypes
import fcntl
import gc
import importlib
import os
import resource
import selectors
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import msgspec

from app.sandbox import harness, protocol
from app.sandbox.confine import LEVELS, Jail
from app.sandbox.functions import MODULES, REGISTRY
from app.sandbox.protocol import Cancel, Exited, Ready, Shutdown, Start

#: modules every child finds already imported (spec 10.4.1 and the shared DSL corpus)
ALLOWLIST = (
    "json", "re", "math", "datetime", "time", "base64", "hashlib", "hmac", "random", "string", "collections",
    "itertools", "functools", "decimal", "fractions", "statistics", "uuid", "urllib.parse", "html", "textwrap",
    "unicodedata", "zoneinfo", "csv", "io", "copy", "typing", "dataclasses", "enum", "logging", "operator",
    "pathlib", "os", "socket", "traceback", "linecache", "struct", "bisect", "heapq", "pprint", "secrets",
)  # fmt: skip

#: the runner's whole environment: constants, nothing inherited
ENVIRONMENT = {
    "LANG": "C.UTF-8",
    "LC_ALL": "C.UTF-8",
    "PYTHONIOENCODING": "utf-8",
    "OPENBLAS_NUM_THREADS": "1",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "NUMEXPR_NUM_THREADS": "1",
    "MPLBACKEND": "Agg",
}


def _rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _vm_mb() -> float:
    with open("/proc/self/statm", "rb") as statm:
        return int(statm.read().split()[0]) * resource.getpagesize() / (1024 * 1024)


def _warm_matplotlib() -> None:
    """Resolve matplotlib's config/cache directory (it insists on a writable one) and build its font list
    here, where writing is allowed: children inherit both and never need to write."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.font_manager
    import matplotlib.pyplot


def _warm_jieba() -> None:
    """Load jieba's dictionary once (about a second) instead of in every child."""
    import logging

    import jieba

    jieba.setLogLevel(logging.WARNING)
    jieba.initialize()


#: extra start-up work for preloaded packages that would otherwise need a writable directory per run
WARM_UPS = {"matplotlib": _warm_matplotlib, "jieba": _warm_jieba}
SCRATCH_PREFIX = "sluice-sandbox-"


def _scratch_directory() -> str:
    """The runner's private directory (/tmp/sluice-sandbox-<pid>): caches of preloaded packages. Children can
    neither read nor write it; ``tempfile.gettempdir()`` names it so that libraries asking for a temporary
    directory get an answer (and a PermissionError when they try to write) instead of a crash."""
    base = tempfile.gettempdir()
    for stale in Path(base).glob(f"{SCRATCH_PREFIX}*"):
        pid = stale.name.removeprefix(SCRATCH_PREFIX)
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            shutil.rmtree(stale, ignore_errors=True)
    path = Path(base) / f"{SCRATCH_PREFIX}{os.getpid()}"
    path.mkdir(mode=0o700, exist_ok=True)
    tempfile.tempdir = str(path)
    return str(path)


def prepare(preload: list[str]) -> tuple[list[str], dict[str, str]]:
    """Environment and pre-imports; returns what was preloaded and what failed to import."""
    os.environ.clear()
    os.environ.update(ENVIRONMENT)
    scratch = _scratch_directory()
    os.environ["MPLCONFIGDIR"] = os.path.join(scratch, "matplotlib")
    errors: dict[str, str] = {}
    loaded: list[str] = []
    for name in (*ALLOWLIST, *MODULES, *preload):
        try:
            importlib.import_module(name)
            if name in WARM_UPS:
                WARM_UPS[name]()
            loaded.append(name)
        except Exception as exc:  # a missing optional package is reported, not fatal
            errors[name] = f"{type(exc).__name__}: {exc}"
    try:
        import _quickjs  # noqa: F401 - javascript
    except ImportError as exc:
        errors["_quickjs"] = f"ImportError: {exc} (javascript code nodes will fail)"
    return [n for n in loaded if n in preload], errors


@dataclass
class Child:
    id: int
    pid: int
    slot: int
    started: float
    deadline: float
    pidfd: int | None
    oom_before: int = 0
    timed_out: bool = False


@dataclass
class Runner:
    jail: Jail
    control: socket.socket
    level: str
    devnull: int = field(default_factory=lambda: os.open(os.devnull, os.O_RDWR))
    children: dict[int, Child] = field(default_factory=dict)  # by pid
    outbox: deque[bytes] = field(default_factory=deque)

    def __post_init__(self) -> None:
        self.selector = selectors.DefaultSelector()
        self.control.setblocking(False)
        self.selector.register(self.control, selectors.EVENT_READ, "control")

    # -- the loop -----------------------------------------------------------------------------------------

    def serve(self) -> None:
        while True:
            now = time.monotonic()
            deadlines = [c.deadline for c in self.children.values() if not c.timed_out]
            wait = max(0.0, min(deadlines) - now) if deadlines else None
            if any(c.pidfd is None for c in self.children.values()):
                wait = 0.01 if wait is None else min(wait, 0.01)  # no pidfds here: poll
            for key, events in self.selector.select(wait):
                if key.data == "control":
                    if events & selectors.EVENT_READ and not self._read_control():
                        return
                    if events & selectors.EVENT_WRITE:
                        self._flush()
                else:
                    self._reap(key.data)
            for child in list(self.children.values()):
                if child.pidfd is None:
                    self._reap(child)
            now = time.monotonic()
            for child in self.children.values():
                if not child.timed_out and now >= child.deadline:
                    child.timed_out = True
                    os.kill(child.pid, signal.SIGKILL)

    def _read_control(self) -> bool:
        """False when the worker is gone or asked us to stop."""
        while True:
            try:
                data, fds, flags, _ = socket.recv_fds(self.control, 65536, 8)
            except BlockingIOError:
                return True
            except OSError:
                return False
            if not data:
                for fd in fds:
                    os.close(fd)
                return False
            try:
                message = protocol.control_decoder.decode(data)
            except Exception:
                message = None
            if isinstance(message, Shutdown):
                for fd in fds:
                    os.close(fd)
                return False
            if isinstance(message, Cancel):
                for fd in fds:
                    os.close(fd)
                for child in self.children.values():
                    if child.id == message.id:
                        os.kill(child.pid, signal.SIGKILL)
                continue
            if not isinstance(message, Start) or len(fds) != 4 or flags & socket.MSG_CTRUNC:
                for fd in fds:
                    os.close(fd)
                if isinstance(message, Start):
                    self._send(
                        Exited(id=message.id, exit_code=protocol.BAD_REQUEST, detail="bad start record")
                    )
                continue
            self._start(message, fds)

    def _send(self, event: Exited) -> None:
        self.outbox.append(protocol.control_encoder.encode(event))
        self._flush()

    def _flush(self) -> None:
        while self.outbox:
            try:
                self.control.send(self.outbox[0])
            except BlockingIOError:
                break
            except OSError:
                self.outbox.clear()
                break
            self.outbox.popleft()
        events = selectors.EVENT_READ | (selectors.EVENT_WRITE if self.outbox else 0)
        self.selector.modify(self.control, events, "control")

    # -- children -----------------------------------------------------------------------------------------

    def _start(self, start: Start, fds: list[int]) -> None:
        cgroups = self.jail.cgroups
        oom_before = 0
        if cgroups is not None:
            cgroups.set_limit(start.slot, start.memory_mb)
            oom_before = cgroups.oom_kills(start.slot)
        started = time.monotonic()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child never returns
            self._child(start, fds)
        for fd in fds:
            os.close(fd)
        try:
            pidfd: int | None = os.pidfd_open(pid)
        except (OSError, AttributeError):
            pidfd = None
        child = Child(start.id, pid, start.slot, started, started + start.timeout, pidfd, oom_before)
        self.children[pid] = child
        if pidfd is not None:
            self.selector.register(pidfd, selectors.EVENT_READ, child)

    def _child(self, start: Start, fds: list[int]) -> None:  # pragma: no cover - runs in the child
        code = protocol.CONFINEMENT_FAILED
        try:
            os.setsid()
            high = [fcntl.fcntl(fd, fcntl.F_DUPFD, 100) for fd in fds]
            request, result, out, err = high
            for source, target in ((self.devnull, 0), (out, 1), (err, 2), (request, 3), (result, 4)):
                os.dup2(source, target)
            os.closerange(5, resource.getrlimit(resource.RLIMIT_NOFILE)[0])
            self.jail.apply(start.slot, start.timeout, start.memory_mb)
        except BaseException as exc:
            try:
                os.write(2, f"error: the sandbox could not confine this run: {exc}\n".encode())
            finally:
                os._exit(code)
        try:
            code = harness.serve(REGISTRY, memory_mb=start.memory_mb, timeout=start.timeout)
        finally:
            os._exit(code)

    def _reap(self, child: Child) -> None:
        try:
            pid, status, usage = os.wait4(child.pid, os.WNOHANG)
        except ChildProcessError:
            pid, status, usage = child.pid, 0, None
        if pid == 0:
            return
        if child.pidfd is not None:
            self.selector.unregister(child.pidfd)
            os.close(child.pidfd)
        del self.children[child.pid]
        signum = os.WTERMSIG(status) if os.WIFSIGNALED(status) else 0
        oom = self.jail.cgroups is not None and self.jail.cgroups.oom_kills(child.slot) > child.oom_before
        detail = ""
        if signum == signal.SIGXCPU:
            detail = "cpu time limit exceeded"
        elif signum == signal.SIGSYS:
            detail = "operation not permitted"
        self._send(
            Exited(
                id=child.id,
                exit_code=-1 if signum else os.WEXITSTATUS(status),
                signal=signum,
                timed_out=child.timed_out,
                oom_killed=oom,
                cpu_seconds=(usage.ru_utime + usage.ru_stime) if usage else 0.0,
                max_rss_mb=(usage.ru_maxrss / 1024) if usage else 0.0,
                duration=time.monotonic() - child.started,
                detail=detail,
            )
        )

    def stop(self) -> None:
        for child in self.children.values():
            os.kill(child.pid, signal.SIGKILL)
        for child in list(self.children.values()):
            os.waitpid(child.pid, 0)
        if self.jail.cgroups is not None:
            self.jail.cgroups.remove()
        if tempfile.tempdir and Path(tempfile.tempdir).name.startswith(SCRATCH_PREFIX):
            shutil.rmtree(tempfile.tempdir, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app.sandbox.runner")
    parser.add_argument("--level", choices=LEVELS, default="strict")
    parser.add_argument("--slots", type=int, default=4)
    parser.add_argument("--preload", default="", help="comma-separated modules to import before forking")
    parser.add_argument("--probe", action="store_true", help="print the Ready report as JSON and exit")
    parser.add_argument("--without", default="", help="comma-separated layers to treat as missing (tests)")
    args = parser.parse_args(argv)

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the worker decides when we stop
    if not args.probe:
        ctypes.CDLL(None).prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG: die with the worker
        if os.getppid() == 1:
            return 1
    preload = [name.strip() for name in args.preload.split(",") if name.strip()]
    preloaded, preload_errors = prepare(preload)
    jail = Jail(args.slots)
    if args.level != "off":
        jail.probe(without={name.strip() for name in args.without.split(",") if name.strip()})
    missing = jail.missing(args.level)
    threads = len(os.listdir("/proc/self/task"))
    refused = None
    if args.level == "off":
        refused = "code execution is disabled (CODE_SANDBOX=off)"
    elif missing:
        reasons = "; ".join(f"{layer}: {jail.problems.get(layer, 'not available')}" for layer in missing)
        refused = f"CODE_SANDBOX={args.level} needs {', '.join(missing)}, which this host lacks ({reasons})"
    elif threads > 1:
        refused = f"the sandbox runner has {threads} threads after its imports; forking it would be unsafe"
    ready = Ready(
        pid=os.getpid(),
        level=args.level,
        layers=jail.layers,
        missing=missing,
        refused=refused,
        preloaded=preloaded,
        preload_errors=preload_errors,
        baseline_vm_mb=round(_vm_mb(), 1),
        rss_mb=round(_rss_mb(), 1),
    )
    if args.probe:
        if jail.cgroups is not None:
            jail.cgroups.remove()
        shutil.rmtree(tempfile.gettempdir(), ignore_errors=True)
        sys.stdout.write(msgspec.json.encode(ready).decode() + "\n")
        return 0
    control = socket.socket(fileno=0)
    control.setblocking(True)
    control.send(protocol.control_encoder.encode(ready))
    runner = Runner(jail, control, args.level)
    gc.freeze()  # children's collections then leave the inherited objects (and their pages) alone
    try:
        if refused is None:
            runner.serve()
    finally:
        runner.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
