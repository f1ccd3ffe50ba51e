"""Memory cgroups for the children, when the host lets the runner make them (else RLIMIT_AS is the only cap).

One cgroup per concurrency slot, made by the runner at start: a child joins its slot's cgroup (while it is
still privileged) and the runner sets the slot's limit before each fork. cgroup v1 (``memory`` hierarchy, as
root) and v2 (a writable own cgroup with the memory controller) are tried in that order; the probe checks the
result by really moving a child in. Pages a child shares with the runner (copy-on-write) stay charged to the
runner, so the limit counts what the child itself allocates.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

V1_ROOT = Path("/sys/fs/cgroup/memory")
V2_ROOT = Path("/sys/fs/cgroup")
GROUP = "sluice-sandbox"


class MemoryCgroups:
    def __init__(self, base: Path, version: int, slots: int) -> None:
        self.base, self.version = base, version
        self.slots = [base / f"slot-{i}" for i in range(slots)]
        self._limits: dict[int, int] = {}

    @property
    def label(self) -> str:
        return f"cgroup v{self.version}"

    @classmethod
    def create(cls, slots: int) -> MemoryCgroups | None:
        """Make the slot cgroups, or return None when the host does not allow it."""
        for version, parent in ((1, V1_ROOT / GROUP), (2, _own_v2_cgroup())):
            if parent is None:
                continue
            if version == 1 and not (V1_ROOT / "memory.limit_in_bytes").exists():
                continue
            try:
                _remove_stale(parent)
                base = parent / str(os.getpid())
                base.mkdir(parents=True, exist_ok=True)
                groups = cls(base, version, slots)
                for slot in groups.slots:
                    slot.mkdir(exist_ok=True)
                    groups.set_limit(groups.slots.index(slot), 64)
                return groups
            except OSError:
                continue
        return None

    def _files(self, slot: int) -> tuple[Path, list[Path]]:
        path = self.slots[slot]
        if self.version == 1:
            limits = [path / "memory.limit_in_bytes"]
            if (path / "memory.memsw.limit_in_bytes").exists():
                limits.append(path / "memory.memsw.limit_in_bytes")
            return path / "cgroup.procs", limits
        return path / "cgroup.procs", [path / "memory.max"]

    def set_limit(self, slot: int, memory_mb: int) -> None:
        if self._limits.get(slot) == memory_mb:
            return  # unchanged since the slot's last child: spare the cgroup file writes
        self._limits.pop(slot, None)
        value = str(memory_mb * 1024 * 1024)
        _, limits = self._files(slot)
        if self.version == 1:
            # memsw must stay >= the memory limit at every step: raise it first, lower it last
            ordered = limits[::-1] if _current(limits[0]) < int(value) else limits
            for path in ordered:
                path.write_text(value)
        else:
            limits[0].write_text(value)
            with contextlib.suppress(OSError):
                (self.slots[slot] / "memory.swap.max").write_text("0")
        self._limits[slot] = memory_mb

    def join(self, slot: int) -> None:
        """In the child, before it drops its privileges."""
        procs, _ = self._files(slot)
        procs.write_text(str(os.getpid()))

    def oom_kills(self, slot: int) -> int:
        path = self.slots[slot]
        name = "memory.oom_control" if self.version == 1 else "memory.events"
        try:
            for line in (path / name).read_text().splitlines():
                key, _, count = line.partition(" ")
                if key == "oom_kill":
                    return int(count)
        except (OSError, ValueError):
            pass
        return 0

    def remove(self) -> None:
        for slot in self.slots:
            with contextlib.suppress(OSError):
                slot.rmdir()
        with contextlib.suppress(OSError):
            self.base.rmdir()


def _current(path: Path) -> int:
    try:
        return int(path.read_text())
    except (OSError, ValueError):
        return 0


def _own_v2_cgroup() -> Path | None:
    if not (V2_ROOT / "cgroup.controllers").exists():
        return None
    try:
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            if line.startswith("0::"):
                own = V2_ROOT / line[3:].lstrip("/")
                if "memory" in (own / "cgroup.subtree_control").read_text().split():
                    return own / GROUP
    except OSError:
        pass
    return None


def _remove_stale(parent: Path) -> None:
    """Slot cgroups left by runners that were killed (their pid is gone)."""
    if not parent.is_dir():
        return
    for runner in parent.iterdir():
        if runner.name.isdigit() and not Path(f"/proc/{runner.name}").exists():
            for slot in runner.glob("slot-*"):
                with contextlib.suppress(OSError):
                    slot.rmdir()
            with contextlib.suppress(OSError):
                runner.rmdir()
