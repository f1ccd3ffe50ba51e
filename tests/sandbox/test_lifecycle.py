"""The runner's life and the client's limits: admission, concurrency, crashes and restarts, levels, probing."""

from __future__ import annotations

import asyncio
import os
import signal
import time

import pytest

from app.sandbox.client import Sandbox, SandboxConfig
from app.sandbox.errors import SandboxBusy, SandboxCrashed, SandboxUnavailable
from app.sandbox.probe import probe

SLEEP = "import time\ndef main(s):\n    time.sleep(s)\n    return {'slept': s}\n"


async def test_concurrency_is_bounded_and_the_queue_is_capped() -> None:
    async with Sandbox(SandboxConfig(max_workers=2, max_queue=4, timeout=5)) as box:
        began = time.monotonic()
        runs = [asyncio.ensure_future(box.run_code("python3", SLEEP, {"s": 0.4})) for _ in range(4)]
        await asyncio.sleep(0.05)
        with pytest.raises(SandboxBusy, match=r"^Too many requests$"):
            await box.run_code("python3", SLEEP, {"s": 0})
        assert [r["slept"] for r in await asyncio.gather(*runs)] == [0.4] * 4
        assert time.monotonic() - began >= 0.8  # two at a time
        assert await box.run_code("python3", SLEEP, {"s": 0}) == {"slept": 0}  # admission frees up again


async def test_a_dead_runner_fails_its_requests_clearly_and_is_restarted() -> None:
    async with Sandbox(SandboxConfig(timeout=10)) as box:
        first = box.runner_pid
        assert first is not None
        running = asyncio.ensure_future(box.run_code("python3", SLEEP, {"s": 5}))
        await asyncio.sleep(0.3)
        os.kill(first, signal.SIGKILL)
        with pytest.raises(SandboxCrashed, match="stopped while running this code"):
            await running
        assert await box.run_code("python3", SLEEP, {"s": 0}) == {"slept": 0}
        assert box.runner_pid not in (None, first)


async def test_children_die_with_their_runner() -> None:
    async with Sandbox(SandboxConfig(timeout=30)) as box:
        runner = box.runner_pid
        running = asyncio.ensure_future(box.run_code("python3", SLEEP, {"s": 20}))
        await asyncio.sleep(0.3)
        children = [int(p) for p in os.listdir("/proc") if p.isdigit() and _parent(int(p)) == runner]
        assert children
        os.kill(runner or 0, signal.SIGKILL)
        with pytest.raises(SandboxCrashed):
            await running
        await asyncio.sleep(0.3)
        assert not any(os.path.exists(f"/proc/{pid}") and _state(pid) != "Z" for pid in children)


async def test_a_cancelled_run_frees_its_slot_and_kills_its_child() -> None:
    async with Sandbox(SandboxConfig(max_workers=1, timeout=30)) as box:
        runner = box.runner_pid
        running = asyncio.ensure_future(box.run_code("python3", SLEEP, {"s": 20}))
        await asyncio.sleep(0.3)
        children = [int(p) for p in os.listdir("/proc") if p.isdigit() and _parent(int(p)) == runner]
        running.cancel()
        with pytest.raises(asyncio.CancelledError):
            await running
        began = time.monotonic()
        assert await box.run_code("python3", SLEEP, {"s": 0}) == {"slept": 0}
        assert time.monotonic() - began < 2
        await asyncio.sleep(0.2)
        assert children
        assert not any(os.path.exists(f"/proc/{pid}") for pid in children)


async def test_off_refuses_code_without_starting_a_runner() -> None:
    async with Sandbox(SandboxConfig(level="off")) as box:
        assert box.runner_pid is None
        with pytest.raises(SandboxUnavailable, match="CODE_SANDBOX=off"):
            await box.run_code("python3", SLEEP, {"s": 0})
        assert box.describe() == "code nodes refused: code execution is disabled (CODE_SANDBOX=off)"


async def test_a_host_below_the_level_refuses_code_and_says_why() -> None:
    async with Sandbox(SandboxConfig(level="strict", without=("landlock",))) as box:
        with pytest.raises(SandboxUnavailable, match="CODE_SANDBOX=strict needs landlock"):
            await box.run_code("python3", SLEEP, {"s": 0})
        assert box.describe().startswith("code nodes refused: CODE_SANDBOX=strict needs landlock")
    async with Sandbox(SandboxConfig(level="relaxed", without=("landlock", "namespaces"))) as relaxed:
        assert relaxed.refused is None
        assert await relaxed.run_code("python3", SLEEP, {"s": 0}) == {"slept": 0}
        assert "landlock" not in relaxed.describe()
        # still no network and no processes at the relaxed level (seccomp)
        seen = await relaxed.call("sandbox.selftest")
        assert seen["seccomp"] == 2
        assert seen["fork"].startswith("denied")
        assert "disabled" in seen["socket"]
        if os.geteuid() == 0:  # privileges are dropped without the namespace layer too
            assert seen["uid"] >= 65537


async def test_the_probe_reports_the_hosts_layers() -> None:
    report, refused = await probe("strict")
    assert refused is None
    assert report is not None
    assert {"namespaces", "landlock", "seccomp", "rlimits", "memory"} <= set(report.layers)
    assert report.missing == []
    off, why = await probe("off")
    assert off is None
    assert why == "code execution is disabled (CODE_SANDBOX=off)"


async def test_preloaded_packages_are_reported() -> None:
    async with Sandbox(SandboxConfig(preload=("json_repair", "no_such_module"))) as box:
        assert box.ready is not None
        assert box.ready.preloaded == ["json_repair"]
        assert "no_such_module" in box.ready.preload_errors
        code = "import json_repair\ndef main():\n    return json_repair.loads('{a: 1,')\n"
        assert await box.run_code("python3", code, {}) == {"a": 1}


def _parent(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return int(stat.read().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def _state(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return ""
