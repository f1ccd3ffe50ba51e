"""The child's seccomp filters: a deny-list compiled once in the runner, plus a tiny per-child "only myself" filter.

Default allow (threads, mmap, futex... whatever CPython, numpy or QuickJS need), explicit denials for what a
code node never needs and what crosses the process boundary: new programs and processes (threads stay
allowed), debugging and reading other processes, signals and resource/scheduling changes aimed at other
processes, namespaces and mounts, kernel attack surface (bpf, io_uring, userfaultfd, keyrings, perf), and the
network: ``socket()`` is refused for every family (``socketpair`` stays, asyncio needs it), so are ``connect``,
``bind``, ``listen`` and addressed sends. ``clone3`` answers ENOSYS so that glibc falls back to ``clone``, whose
flags seccomp can read.

The deny-list is built with libseccomp (``pyseccomp``, ctypes) and compiled to BPF once in the runner, before
any fork; a child only installs the program. The second filter is raw BPF because it embeds the child's own pid.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import struct
from typing import Any

CLONE_THREAD = 0x00010000

DENIED = (
    # new programs and processes
    "execve", "execveat", "fork", "vfork",
    # other processes: debugging, memory, signals, handles
    "ptrace", "process_vm_readv", "process_vm_writev", "kill", "tkill", "rt_sigqueueinfo",
    "pidfd_open", "pidfd_send_signal", "pidfd_getfd", "process_madvise", "process_mrelease", "kcmp",
    "get_robust_list", "migrate_pages", "move_pages", "setpriority", "ioprio_set",
    # namespaces, mounts, roots
    "unshare", "setns", "mount", "umount2", "pivot_root", "chroot", "mount_setattr", "open_tree",
    "move_mount", "fsopen", "fsconfig", "fsmount", "fspick",
    # kernel attack surface
    "bpf", "perf_event_open", "keyctl", "add_key", "request_key", "userfaultfd", "io_uring_setup",
    "io_uring_enter", "io_uring_register", "personality", "open_by_handle_at", "name_to_handle_at",
    "fanotify_init", "lookup_dcookie", "uselib", "iopl", "ioperm",
    # the machine
    "init_module", "finit_module", "delete_module", "kexec_load", "kexec_file_load", "reboot", "swapon",
    "swapoff", "acct", "quotactl", "quotactl_fd", "syslog", "settimeofday", "clock_settime", "clock_adjtime",
    "adjtimex", "sethostname", "setdomainname", "vhangup",
    # the network (socket() below)
    "connect", "bind", "listen", "accept", "accept4", "sendmsg", "sendmmsg",
)  # fmt: skip

#: syscalls whose first argument names a process: allowed only for the child itself (or 0 = itself).
SELF_ONLY = ("tgkill", "rt_tgsigqueueinfo", "prlimit64", "sched_setaffinity", "sched_setscheduler",
             "sched_setparam", "sched_setattr")  # fmt: skip

_PR_SET_NO_NEW_PRIVS, _PR_SET_SECCOMP, _SECCOMP_MODE_FILTER = 38, 22, 2
_RET_ALLOW, _RET_ERRNO = 0x7FFF0000, 0x00050000
_LD_ABS_W, _JEQ_K, _RET_K = 0x20, 0x15, 0x06

_libc = ctypes.CDLL(None, use_errno=True)


class SeccompError(OSError):
    """seccomp could not be set up."""


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


class Filters:
    """Built in the runner (before any fork): the libseccomp deny-list and the syscall numbers the per-child
    filter needs."""

    def __init__(self) -> None:
        import pyseccomp as sc  # ctypes over libseccomp.so.2; a host without it has no seccomp layer

        self._sc = sc
        deny = sc.ERRNO(errno.EPERM)
        self.deny_list = sc.SyscallFilter(sc.ALLOW)
        self.deny_list.set_attr(sc.Attr.ACT_BADARCH, sc.KILL_PROCESS)  # no i386/x32 side doors
        with contextlib.suppress(OSError):  # libseccomp >= 2.5: a binary tree instead of a linear scan
            self.deny_list.set_attr(sc.Attr.CTL_OPTIMIZE, 2)
        self.skipped: list[str] = []
        for name in DENIED:
            self._add(deny, name)
        self._add(sc.ERRNO(errno.ENOSYS), "clone3")
        self._add(deny, "clone", sc.Arg(0, sc.MASKED_EQ, CLONE_THREAD, 0))
        self._add(deny, "socket")
        self._add(deny, "sendto", sc.Arg(4, sc.NE, 0))
        self.self_only = [n for n in (self._number(name) for name in SELF_ONLY) if n is not None]
        self.deny_program = _export(self.deny_list)

    def _number(self, name: str) -> int | None:
        number = int(self._sc.resolve_syscall(self._sc.Arch.NATIVE, name))
        return number if number >= 0 else None

    def _add(self, action: int, name: str, *args: Any) -> None:
        if self._number(name) is None:  # not on this architecture
            self.skipped.append(name)
            return
        self.deny_list.add_rule(action, name, *args)

    def load(self, pid: int) -> None:
        """In the child: no_new_privs, then both filters. Irreversible."""
        if _libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            raise SeccompError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS)")
        _install(self.deny_program)
        _install(self_only_program(self.self_only, pid))


def _export(syscall_filter: Any) -> bytes:
    """The compiled BPF of a libseccomp filter (loading it raw in each child skips libseccomp's compiler)."""
    read, write = os.pipe()
    try:
        with os.fdopen(write, "wb", closefd=False) as out:
            syscall_filter.export_bpf(out)
    finally:
        os.close(write)
    chunks = []
    while chunk := os.read(read, 65536):
        chunks.append(chunk)
    os.close(read)
    return b"".join(chunks)


def _install(program: bytes) -> None:
    buffer = ctypes.create_string_buffer(program, len(program))
    fprog = _SockFprog(len(program) // 8, ctypes.cast(buffer, ctypes.c_void_p))
    if _libc.prctl(_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, ctypes.byref(fprog), 0, 0) != 0:
        raise SeccompError(ctypes.get_errno(), "prctl(PR_SET_SECCOMP)")


def self_only_program(numbers: list[int], pid: int) -> bytes:
    """cBPF: for each syscall in ``numbers``, EPERM unless its first argument is ``pid`` or 0. The deny-list
    filter already kills foreign architectures, so this one only looks at the number and the low 32 bits of the
    first argument (the kernel reads a pid_t)."""

    def ins(code: int, jt: int, jf: int, k: int) -> bytes:
        return struct.pack("=HBBI", code, jt, jf, k & 0xFFFFFFFF)

    out = [ins(_LD_ABS_W, 0, 0, 0)]  # A = seccomp_data.nr
    for number in numbers:
        out += [
            ins(_JEQ_K, 0, 5, number),  # not this syscall: next block
            ins(_LD_ABS_W, 0, 0, 16),  # A = args[0] (low word)
            ins(_JEQ_K, 2, 0, pid),
            ins(_JEQ_K, 1, 0, 0),
            ins(_RET_K, 0, 0, _RET_ERRNO | errno.EPERM),
            ins(_RET_K, 0, 0, _RET_ALLOW),
        ]
    out.append(ins(_RET_K, 0, 0, _RET_ALLOW))
    return b"".join(out)
