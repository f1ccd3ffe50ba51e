"""Each confinement layer on its own, in a child forked from the test process: what it refuses and allows.

The escape tests go through every layer at once, where one layer often hides another (a dropped uid already
stops signals to root's processes; Landlock already stops exec of /bin). Here each layer must hold alone.
"""

from __future__ import annotations

import ctypes
import errno
import os
import resource
import socket
import sys
import threading
from collections.abc import Callable

import pytest

from app.sandbox import landlock
from app.sandbox.confine import NPROC, Jail, _in_child
from app.sandbox.seccomp import Filters

libc = ctypes.CDLL(None, use_errno=True)
SYS_TGKILL, SYS_PRLIMIT64, SYS_CLONE3 = 234, 302, 435


def in_child(check: Callable[[], None]) -> None:
    error = _in_child(check)
    assert error is None, error


def errno_of(result: int) -> int:
    return ctypes.get_errno() if result == -1 else 0


def expect_errno(code: int, action: Callable[[], object]) -> None:
    try:
        action()
    except OSError as exc:
        assert exc.errno == code, exc
        return
    raise AssertionError(f"{action} was allowed")


@pytest.fixture(scope="module")
def filters() -> Filters:
    return Filters()


def test_seccomp_only_lets_a_child_signal_or_limit_itself(filters: Filters) -> None:
    parent = os.getpid()

    def check() -> None:
        filters.load(os.getpid())
        assert errno_of(libc.syscall(SYS_TGKILL, parent, parent, 0)) == errno.EPERM  # same uid: only seccomp
        assert errno_of(libc.syscall(SYS_PRLIMIT64, parent, 7, None, None)) == errno.EPERM
        assert errno_of(libc.syscall(SYS_TGKILL, os.getpid(), os.getpid(), 0)) == 0
        assert errno_of(libc.syscall(SYS_PRLIMIT64, 0, 7, None, None)) == 0
        expect_errno(errno.EPERM, lambda: os.kill(parent, 0))
        expect_errno(errno.EPERM, lambda: os.sched_setaffinity(parent, {0}))

    in_child(check)


def test_seccomp_refuses_processes_and_sockets_but_not_threads(filters: Filters) -> None:
    def check() -> None:
        filters.load(os.getpid())
        expect_errno(errno.EPERM, lambda: os.execv(sys.executable, [sys.executable, "-c", "pass"]))
        expect_errno(errno.EPERM, os.fork)
        expect_errno(errno.EPERM, lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM))
        expect_errno(errno.EPERM, lambda: socket.socket(socket.AF_UNIX, socket.SOCK_STREAM))
        assert errno_of(libc.syscall(SYS_CLONE3, None, 0)) == errno.ENOSYS  # glibc then falls back to clone
        a, b = socket.socketpair()
        a.send(b"x")
        assert b.recv(1) == b"x"
        expect_errno(errno.EPERM, lambda: a.sendto(b"x", "/dev/log"))
        out: list[int] = []
        thread = threading.Thread(target=out.append, args=(1,))
        thread.start()
        thread.join()
        assert out == [1]

    in_child(check)


@pytest.mark.skipif(landlock.abi_version() < 1, reason="no Landlock on this host")
def test_landlock_alone_allows_reading_the_interpreter_and_nothing_else(tmp_path: object) -> None:
    abi = landlock.abi_version()
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    jail = Jail(1)
    target = os.path.join(str(tmp_path), "written")

    def check() -> None:
        assert libc.prctl(38, 1, 0, 0, 0) == 0
        landlock.restrict(jail.read_only, abi)
        with open(os.__file__, "rb") as stdlib:
            assert stdlib.read(1)
        expect_errno(errno.EACCES, lambda: open("/etc/hostname", "rb"))
        expect_errno(errno.EACCES, lambda: open(target, "w"))
        expect_errno(errno.EACCES, lambda: os.listdir("/proc/self"))
        if abi >= 4:
            expect_errno(errno.EACCES, lambda: socket.create_connection(("127.0.0.1", port), 1))
        if abi >= 6:
            expect_errno(errno.EPERM, lambda: os.kill(os.getppid(), 0))

    try:
        in_child(check)
    finally:
        listener.close()
    assert not os.path.exists(target)


@pytest.mark.skipif(os.geteuid() != 0, reason="the root path of the namespace layer")
def test_namespaces_and_privileges_give_an_empty_network_and_another_user() -> None:
    jail = Jail(2)
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def check() -> None:
        jail._isolate_network()
        jail._drop_privileges(1)
        assert os.getuid() == os.geteuid() == 65538
        assert os.getgid() == 65538
        assert os.getgroups() == []
        assert resource.getrlimit(resource.RLIMIT_NPROC) == (NPROC, NPROC)
        assert {name for _, name in socket.if_nameindex()} <= {"lo"}
        expect_errno(errno.ENETUNREACH, lambda: socket.create_connection(("127.0.0.1", port), 1))
        expect_errno(errno.EPERM, lambda: os.kill(1, 0))

    try:
        in_child(check)
    finally:
        listener.close()
