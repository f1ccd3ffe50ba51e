"""What the host offers, in words: the one-line description of a runner's report, and a probe for processes
that do not run code themselves (the API's ``/readyz``), which asks a short-lived runner in ``--probe`` mode."""

from __future__ import annotations

import asyncio

import msgspec

from app.sandbox.process import EMPTY_ENVIRONMENT, SOURCE_ROOT, runner_command
from app.sandbox.protocol import Ready


def describe(level: str, ready: Ready | None, refused: str | None) -> str:
    """One line for logs and ``/readyz``: the level and its layers, or why code nodes are refused."""
    if refused:
        return f"code nodes refused: {refused}"
    assert ready is not None
    layers = ", ".join(f"{name} ({what})" for name, what in ready.layers.items())
    return f"{level}: {layers}"


async def probe(level: str, slots: int = 4) -> tuple[Ready | None, str | None]:
    """What a runner would find on this host (for ``/readyz`` in the API process): (report, error)."""
    if level == "off":
        return None, "code execution is disabled (CODE_SANDBOX=off)"
    command = runner_command(level, slots, (), probe=True)
    proc = await asyncio.create_subprocess_exec(
        *command,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=EMPTY_ENVIRONMENT,
        cwd=SOURCE_ROOT,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), 60)
    except TimeoutError:
        proc.kill()
        return None, "the sandbox probe timed out"
    if proc.returncode != 0:
        return None, f"the sandbox probe failed: {err.decode(errors='replace').strip()[-500:]}"
    report = msgspec.json.decode(out.strip().splitlines()[-1], type=Ready)
    return report, report.refused
