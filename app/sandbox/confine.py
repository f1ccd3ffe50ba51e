"""Confining a forked child, layer by layer, and finding out at start which layers this host offers.

Order in the child (``Jail.apply``): die with the runner; join the slot's memory cgroup; new network namespace
(as root: a plain netns, then setresuid/setresgid to an unprivileged id per slot; otherwise a user namespace
with the netns, capabilities dropped); rlimits; no_new_privs; Landlock (read/execute-only allowlist, no TCP);
seccomp. A layer the probe found available that then fails raises :class:`ConfinementError`: the child exits
without running anything. Nothing here runs unconfined code.
"""

from __future__ import annotations

import contextlib
import ctypes
import math
import os
import resource
import signal
import site
import stat
import sys
import sysconfig
from collections.abc import Callable
from pathlib import Path

from app.sandbox import landlock
from app.sandbox.cgroups import MemoryCgroups
from app.sandbox.seccomp import Filters

LEVELS = ("strict", "relaxed", "off")
#: what each level needs from the host
REQUIRED = {
    "strict": ("privileges", "namespaces", "landlock", "seccomp", "rlimits"),
    "relaxed": ("privileges", "seccomp", "rlimits"),
}
UID_BASE = 65537
NOFILE = 64
#: processes and threads of one slot's uid (root runners only: otherwise the uid is the worker's own). seccomp
#: already refuses new processes; this bounds threads, and would bound a fork bomb if seccomp were missing.
NPROC = 256

_CLONE_NEWUSER, _CLONE_NEWNET = 0x10000000, 0x40000000
_PR_SET_PDEATHSIG, _PR_SET_KEEPCAPS = 1, 8
_CAP_DAC_READ_SEARCH = 2
_CAP_VERSION_3 = 0x20080522

_libc = ctypes.CDLL(None, use_errno=True)


class ConfinementError(Exception):
    """A layer that this host offers could not be applied to the child."""


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    ]


def _ok(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise ConfinementError(f"{what}: {os.strerror(err)}")


def _set_caps(mask: int) -> None:
    header = _CapHeader(_CAP_VERSION_3, 0)
    data = (_CapData * 2)(_CapData(mask, mask, 0), _CapData(0, 0, 0))
    _ok(_libc.capset(ctypes.byref(header), data), "capset")


def read_only_paths() -> list[str]:
    """What a child may read and execute: the interpreter, its libraries and the runner's virtualenv, shared
    libraries, time zones. Not /etc (beyond localtime and the loader cache), /proc, /home, /tmp or the project."""
    paths = {
        sys.prefix,
        sys.base_prefix,
        sys.exec_prefix,
        sys.base_exec_prefix,
        sysconfig.get_paths()["stdlib"],
        sysconfig.get_paths()["platstdlib"],
        *site.getsitepackages(),
        "/usr/lib",
        "/usr/lib64",
        "/lib",
        "/lib64",
        "/usr/share/zoneinfo",
        "/etc/localtime",
        "/etc/ld.so.cache",
    }
    return sorted(p for p in paths if p and os.path.exists(p))


def _world_readable(path: str) -> bool:
    """True when a stranger can reach and read ``path`` (every parent searchable by others)."""
    current = Path(path).resolve()
    for part in [current, *current.parents]:
        try:
            mode = os.stat(part).st_mode
        except OSError:
            return False
        if stat.S_ISDIR(mode) and not mode & stat.S_IXOTH:
            return False
    return True


class Jail:
    """The layers this host offers (found by ``probe``) and how to put a child behind them."""

    def __init__(self, slots: int) -> None:
        self.root = os.geteuid() == 0
        self.runner_pid = os.getpid()
        self.read_only = read_only_paths()
        #: a root runner whose interpreter lives somewhere strangers cannot read (pyenv under /root) lets the
        #: child keep CAP_DAC_READ_SEARCH; Landlock still limits reads to the allowlist
        self.keep_dac_read = self.root and not all(_world_readable(p) for p in self.read_only)
        self.layers: dict[str, str] = {}
        self.problems: dict[str, str] = {}
        self.namespaces = False
        self.landlock_abi = 0
        self.filters: Filters | None = None
        self.cgroups: MemoryCgroups | None = None
        self.slots = slots

    # -- probing (in the runner, at start) ----------------------------------------------------------------

    def probe(self, without: set[str] | None = None) -> None:
        """Try each layer in a throw-away child; keep those that work (``without``: pretend these are missing)."""
        self._probe()
        for name in without or ():
            self.layers.pop(name, None)
            self.problems[name] = "switched off"
            if name == "namespaces":
                self.namespaces = False
            elif name == "privileges":
                raise ValueError("privileges cannot be switched off")
            elif name == "landlock":
                self.landlock_abi = 0
            elif name == "seccomp":
                self.filters = None

    def _probe(self) -> None:
        self.layers["rlimits"] = "as, cpu, nofile, fsize, core" + (", nproc" if self.root else "")
        error = _in_child(lambda: self._drop_privileges(0)) if self.root else None
        if error is None:
            self.layers["privileges"] = (
                f"uid {UID_BASE}+slot, no capabilities"
                + (" but dac_read_search" if self.keep_dac_read else "")
                if self.root
                else f"unprivileged uid {os.getuid()}"
            )
        else:
            self.problems["privileges"] = error
        error = _in_child(self._namespaces)
        if error is None:
            self.namespaces = True
            self.layers["namespaces"] = "netns" if self.root else "userns+netns, no capabilities"
        else:
            self.problems["namespaces"] = error
        abi = landlock.abi_version()
        if abi:
            error = _in_child(lambda: self._landlock_and_check(abi))
            if error is None:
                self.landlock_abi = abi
                self.layers["landlock"] = (
                    f"abi {abi}: read-only allowlist"
                    + (", no tcp" if abi >= 4 else "")
                    + (", scoped signals" if abi >= 6 else "")
                )
            else:
                self.problems["landlock"] = error
        else:
            self.problems["landlock"] = "not available (kernel < 5.13 or disabled)"
        try:
            filters = Filters()
        except (OSError, RuntimeError) as exc:
            self.problems["seccomp"] = f"libseccomp: {exc}"
        else:
            error = _in_child(lambda: self._seccomp_and_check(filters))
            if error is None:
                self.filters = filters
                self.layers["seccomp"] = "deny-list + self-only signals"
            else:
                self.problems["seccomp"] = error
        cgroups = MemoryCgroups.create(self.slots) if self.root else None
        if cgroups is not None and _in_child(lambda: cgroups.join(0)) is None:
            self.cgroups = cgroups
            self.layers["memory"] = cgroups.label
        else:
            if cgroups is not None:
                cgroups.remove()
            self.layers["memory"] = "rlimit_as only"

    def _namespaces(self) -> None:
        self._isolate_network()
        import socket

        interfaces = {name for _, name in socket.if_nameindex()}
        if interfaces - {"lo"}:
            raise ConfinementError(f"the new network namespace still sees {sorted(interfaces)}")

    def _landlock_and_check(self, abi: int) -> None:
        _ok(_libc.prctl(38, 1, 0, 0, 0), "prctl(PR_SET_NO_NEW_PRIVS)")
        landlock.restrict(self.read_only, abi)
        try:
            open("/etc/hostname", "rb").close()
        except PermissionError:
            return
        raise ConfinementError("landlock did not deny /etc/hostname")

    def _seccomp_and_check(self, filters: Filters) -> None:
        filters.load(os.getpid())
        try:
            os.execv("/bin/true", ["true"])  # noqa: S606 - must be refused
        except PermissionError:
            return
        raise ConfinementError("seccomp did not deny execve")

    def missing(self, level: str) -> list[str]:
        return [layer for layer in REQUIRED.get(level, ()) if layer not in self.layers]

    # -- confining a child ---------------------------------------------------------------------------------

    def _isolate_network(self) -> None:
        """A new, empty network namespace (as a non-root user, inside a new user namespace)."""
        if self.root:
            _ok(_libc.unshare(_CLONE_NEWNET), "unshare(CLONE_NEWNET)")
        else:
            _ok(_libc.unshare(_CLONE_NEWUSER | _CLONE_NEWNET), "unshare(CLONE_NEWUSER|CLONE_NEWNET)")

    def _drop_privileges(self, slot: int) -> None:
        """As root: become uid/gid 65537+slot with no capabilities (or only CAP_DAC_READ_SEARCH, see
        ``keep_dac_read``), at most NPROC tasks. Otherwise: drop the capabilities a user namespace gave us."""
        if not self.root:
            if self.namespaces:
                _set_caps(0)
            return
        uid = UID_BASE + slot
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        if self.keep_dac_read:
            _ok(_libc.prctl(_PR_SET_KEEPCAPS, 1, 0, 0, 0), "prctl(PR_SET_KEEPCAPS)")
        os.setresuid(uid, uid, uid)
        _set_caps(1 << _CAP_DAC_READ_SEARCH if self.keep_dac_read else 0)
        _set_limits({resource.RLIMIT_NPROC: (NPROC, NPROC)})

    def apply(self, slot: int, timeout: float, memory_mb: int) -> None:
        """Confine the calling (forked, single-threaded) child. Irreversible; raises ConfinementError."""
        self.limit(timeout, memory_mb, self.enter(slot))

    def enter(self, slot: int) -> int:
        """Every layer but the per-request limits (a pre-forked child waits for its request after this).
        Returns the bytes mapped at this point, which the address-space limit adds to the request's memory."""
        try:
            _ok(_libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0), "prctl(PR_SET_PDEATHSIG)")
            if self.cgroups is not None:
                self.cgroups.join(slot)
            if self.namespaces:
                self._isolate_network()
            if "privileges" not in self.layers:
                raise ConfinementError("cannot drop privileges")
            self._drop_privileges(slot)
            # a change of credentials clears the parent-death signal: set it again
            _ok(_libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0), "prctl(PR_SET_PDEATHSIG)")
            if os.getppid() != self.runner_pid:
                raise ConfinementError("the runner is gone")
            # RLIMIT_AS counts what the runner had mapped before the fork (pre-imported modules) too
            with open("/proc/self/statm", "rb") as statm:
                mapped = int(statm.read().split()[0]) * resource.getpagesize()
            _set_limits({
                resource.RLIMIT_CORE: (0, 0),
                resource.RLIMIT_FSIZE: (0, 0),
                resource.RLIMIT_NOFILE: (NOFILE, NOFILE),
            })  # fmt: skip
            _ok(_libc.prctl(38, 1, 0, 0, 0), "prctl(PR_SET_NO_NEW_PRIVS)")
            if self.landlock_abi:
                landlock.restrict(self.read_only, self.landlock_abi)
            if self.filters is not None:
                self.filters.load(os.getpid())
        except ConfinementError:
            raise
        except OSError as exc:
            raise ConfinementError(str(exc)) from None
        return mapped

    def limit(self, timeout: float, memory_mb: int, mapped: int) -> None:
        """CPU time and address space for this request (lowering a limit needs no privilege)."""
        cpu = math.ceil(timeout) + 1
        try:
            _set_limits({
                resource.RLIMIT_CPU: (cpu, cpu + 1),
                resource.RLIMIT_AS: (mapped + memory_mb * 1024 * 1024,) * 2,
            })  # fmt: skip
        except OSError as exc:
            raise ConfinementError(f"setrlimit: {exc}") from None


def _set_limits(limits: dict[int, tuple[int, int]]) -> None:
    for which, (soft, hard) in limits.items():
        _, current_hard = resource.getrlimit(which)
        if current_hard != resource.RLIM_INFINITY:
            hard = min(hard, current_hard)
            soft = min(soft, hard)
        resource.setrlimit(which, (soft, hard))


def _in_child(check: Callable[[], None]) -> str | None:
    """Run ``check`` in a forked child; None if it succeeded, else its error."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        os.close(read)
        code = 0
        try:
            check()
        except BaseException as exc:
            with contextlib.suppress(OSError):
                os.write(write, f"{type(exc).__name__}: {exc}".encode()[:500])
            code = 1
        os._exit(code)
    os.close(write)
    message = b""
    while chunk := os.read(read, 4096):
        message += chunk
    os.close(read)
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) == 0:
        return None
    return message.decode(errors="replace") or f"exit status {os.waitstatus_to_exitcode(status)}"
