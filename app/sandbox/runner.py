"""The sandbox runner ("zygote"): ``python -m app.sandbox.runner``, started by the worker, forks confined children.

It starts with an empty environment and no inherited descriptors besides its control socket (fd 0), prepares
its memory (:mod:`app.sandbox.zygote`), probes the host's confinement layers and reports ``Ready``. Then,
single-threaded, it serves ``Start`` records: it hands the request's descriptors to the slot's warm child (or
forks a cold one), kills a child at its wall-clock timeout, reaps it through a pidfd, reports ``Exited`` and
forks the slot's next warm child. It never reads a request or a result: those travel on descriptors the worker
hands to the child, so no tenant's data sits in memory that later children inherit. ``--probe`` prints the
``Ready`` report as JSON and exits (for ``/readyz``).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import gc
import os
import selectors
import signal
import socket
import sys
import time
from collections import deque
from dataclasses import dataclass, field

import msgspec

from app.sandbox import child as children
from app.sandbox import protocol, zygote
from app.sandbox.confine import LEVELS, Jail
from app.sandbox.protocol import Cancel, Exited, Ready, Shutdown, Start

#: a warm child that dies this many times without serving stops pre-forking (cold forks report the reason)
WARM_FAILURES_ALLOWED = 3


@dataclass
class Child:
    pid: int
    slot: int
    pidfd: int | None
    id: int | None = None  # None: warm, waiting for a request
    started: float = 0.0
    deadline: float = float("inf")
    oom_before: int = 0
    timed_out: bool = False
    inbox: socket.socket | None = None  # a warm child's channel


@dataclass
class Runner:
    jail: Jail
    control: socket.socket
    slots: int
    devnull: int = field(default_factory=lambda: os.open(os.devnull, os.O_RDWR))
    children: dict[int, Child] = field(default_factory=dict)  # by pid
    warm: dict[int, Child] = field(default_factory=dict)  # by slot
    outbox: deque[bytes] = field(default_factory=deque)
    warm_failures: int = 0
    #: slots whose warm child is to be forked when the runner has nothing more urgent to do
    to_prefork: deque[int] = field(default_factory=deque)
    handed_off: bool = False
    #: each slot's cgroup OOM-kill count after its last child (the baseline for the next one)
    oom_counts: dict[int, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.selector = selectors.DefaultSelector()
        self.control.setblocking(False)
        self.selector.register(self.control, selectors.EVENT_READ, "control")

    # -- the loop -----------------------------------------------------------------------------------------

    def serve(self) -> None:
        """Forks happen when nothing waits on the runner: right after a request was handed to a child (which
        now runs on its own), or after a few idle milliseconds; never between a child's exit and the next
        request, which a fork (milliseconds for a big runner) would delay."""
        self.to_prefork.extend(range(self.slots))
        while True:
            now = time.monotonic()
            deadlines = [c.deadline for c in self.children.values() if c.id is not None and not c.timed_out]
            wait = max(0.0, min(deadlines) - now) if deadlines else None
            if any(c.pidfd is None for c in self.children.values()):
                wait = 0.01 if wait is None else min(wait, 0.01)  # no pidfds here: poll
            if self.to_prefork:
                wait = 0.002 if wait is None else min(wait, 0.002)
            self.handed_off = False
            ready = self.selector.select(wait)
            if self.to_prefork and not ready:  # idle
                self._prefork(self.to_prefork.popleft())
            for key, events in ready:
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
            if self.to_prefork and self.handed_off:
                self._prefork(self.to_prefork.popleft())
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
            try:
                message = protocol.control_decoder.decode(data) if data else None
            except msgspec.DecodeError:
                message = None
            if not isinstance(message, Start) or len(fds) != 4 or flags & socket.MSG_CTRUNC:
                for fd in fds:
                    os.close(fd)
            if not data or isinstance(message, Shutdown):
                return False
            if isinstance(message, Cancel):
                for child in self.children.values():
                    if child.id == message.id:
                        os.kill(child.pid, signal.SIGKILL)
            elif isinstance(message, Start) and len(fds) == 4 and not flags & socket.MSG_CTRUNC:
                self._start(message, fds)
            elif isinstance(message, Start):
                self._send(Exited(id=message.id, exit_code=protocol.BAD_REQUEST, detail="bad start record"))

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

    def _track(self, pid: int, child: Child) -> None:
        try:
            child.pidfd = os.pidfd_open(pid)
        except (OSError, AttributeError):
            child.pidfd = None
        self.children[pid] = child
        if child.pidfd is not None:
            self.selector.register(child.pidfd, selectors.EVENT_READ, child)

    def _prefork(self, slot: int) -> None:
        if slot in self.warm or self.warm_failures >= WARM_FAILURES_ALLOWED:
            return
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child never returns
            children.warm(self.jail, self.devnull, slot, theirs)
        theirs.close()
        child = Child(pid=pid, slot=slot, pidfd=None, inbox=ours)
        self._track(pid, child)
        self.warm[slot] = child

    def _start(self, start: Start, fds: list[int]) -> None:
        cgroups = self.jail.cgroups
        oom_before = 0
        if cgroups is not None:
            cgroups.set_limit(start.slot, start.memory_mb)
            if start.slot not in self.oom_counts:
                self.oom_counts[start.slot] = cgroups.oom_kills(start.slot)
            oom_before = self.oom_counts[start.slot]
        now = time.monotonic()
        warm = self.warm.pop(start.slot, None)
        handed = False
        if warm is not None and warm.inbox is not None:
            with contextlib.suppress(OSError):
                socket.send_fds(warm.inbox, [protocol.control_encoder.encode(start)], fds)
                handed = True
            warm.inbox.close()
            warm.inbox = None
            if handed:
                child = warm
            else:  # it died meanwhile: its exit is reaped as a warm failure
                warm.id = -1
        if not handed:
            pid = os.fork()
            if pid == 0:  # pragma: no cover - the child never returns
                children.cold(self.jail, self.devnull, start, fds)
            child = Child(pid=pid, slot=start.slot, pidfd=None)
            self._track(pid, child)
        for fd in fds:
            os.close(fd)
        child.id, child.started, child.deadline = start.id, now, now + start.timeout
        child.oom_before = oom_before
        self.handed_off = True

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
        if child.id is None or child.id < 0:  # a warm child died before serving anything
            if self.warm.get(child.slot) is child:
                del self.warm[child.slot]
            if child.inbox is not None:
                child.inbox.close()
            self.warm_failures += 1
            self.to_prefork.append(child.slot)
            return
        signum = os.WTERMSIG(status) if os.WIFSIGNALED(status) else 0
        oom = False
        if self.jail.cgroups is not None and signum == signal.SIGKILL:  # the OOM killer only sends SIGKILL
            self.oom_counts[child.slot] = self.jail.cgroups.oom_kills(child.slot)
            oom = self.oom_counts[child.slot] > child.oom_before
        detail = ""
        if signum == signal.SIGXCPU:
            detail = "cpu time limit exceeded"
        elif signum == signal.SIGSYS:
            detail = "operation not permitted"
        elif signum and signum != signal.SIGKILL:
            detail = f"killed by signal {signal.Signals(signum).name}"
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
        self.to_prefork.append(child.slot)

    def stop(self) -> None:
        for child in self.children.values():
            with contextlib.suppress(ProcessLookupError):
                os.kill(child.pid, signal.SIGKILL)
        for child in list(self.children.values()):
            with contextlib.suppress(ChildProcessError):
                os.waitpid(child.pid, 0)
        if self.jail.cgroups is not None:
            self.jail.cgroups.remove()
        zygote.remove_scratch()


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
    preloaded, preload_errors = zygote.prepare(preload)
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
        baseline_vm_mb=round(zygote.vm_mb(), 1),
        rss_mb=round(zygote.rss_mb(), 1),
    )
    if args.probe:
        if jail.cgroups is not None:
            jail.cgroups.remove()
        zygote.remove_scratch()
        sys.stdout.write(msgspec.json.encode(ready).decode() + "\n")
        return 0
    control = socket.socket(fileno=0)
    control.setblocking(True)
    control.send(protocol.control_encoder.encode(ready))
    runner = Runner(jail, control, args.slots)
    gc.freeze()  # children's collections then leave the inherited objects (and their pages) alone
    try:
        if refused is None:
            runner.serve()
    finally:
        runner.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
