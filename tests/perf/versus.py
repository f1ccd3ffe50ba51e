"""`just bench chat --against REF`: what this checkout adds to the first token next to what git revision REF adds,
measured side by side, for a change too small to see across runs on a shared machine (one run to the next
drifts by several milliseconds; two versions measured in the same minutes do not).

REF is checked out in a temporary git worktree; each version runs its own API and worker on a database of its
own. Turns alternate between the two (each right after one call straight to the model, whose time is taken off
the turn's), so both see the same machine at the same moments. The version whose processes start second was
measured ~0.7 ms faster when both were the same code, so the comparison runs twice, once in each start order,
and pools the turns of both."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from tests.perf.bench_chat import ChatProcesses, Options, app_key, chat_turn, model_first_token
from tests.perf.harness import Row, bench_database, median, report
from tests.support.fake_openai import FakeOpenAI
from tests.support.processes import ROOT

HERE = "this checkout"


@contextlib.contextmanager
def worktree(ref: str) -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="sluice-against-"))
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(folder), ref], check=True)
    try:
        yield folder
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(folder)], check=False)


async def alternate(fake: FakeOpenAI, procs: dict[str, ChatProcesses], turns: int) -> dict[str, list[float]]:
    """Milliseconds each version adds to the first token, turn by turn (the first ten of each are warm-up)."""
    added: dict[str, list[float]] = {name: [] for name in procs}
    async with contextlib.AsyncExitStack() as stack:
        direct = await stack.enter_async_context(httpx.AsyncClient(timeout=60))
        clients = {
            name: await stack.enter_async_context(httpx.AsyncClient(base_url=p.base_url, timeout=60))
            for name, p in procs.items()
        }
        headers = {name: await app_key(client) for name, client in clients.items()}
        conversations: dict[str, str | None] = dict.fromkeys(procs)
        names = list(procs)
        for i in range(turns + 10):
            for name in names if i % 2 == 0 else names[::-1]:
                model = await model_first_token(direct, fake.base_url, f"question {i}")
                turn = await chat_turn(
                    clients[name], headers[name], f"question {i}", conversations[name], "ab"
                )
                conversations[name] = turn.conversation_id
                if i >= 10:
                    added[name].append(turn.first_ms - model)
    return added


def compare(fake: FakeOpenAI, ref: str, turns: int) -> list[Row]:
    pooled: dict[str, list[float]] = {HERE: [], ref: []}
    with worktree(ref) as other:
        for first in (HERE, ref):
            with bench_database() as here_url, bench_database() as ref_url:
                procs = {HERE: ChatProcesses(here_url), ref: ChatProcesses(ref_url, other)}
                try:
                    for name in (first, *(n for n in procs if n != first)):
                        procs[name].llm_base_url = fake.base_url
                        procs[name].start_api()
                        procs[name].start_worker("worker")
                    time.sleep(2)  # let the workers connect and LISTEN
                    for name, values in asyncio.run(alternate(fake, procs, turns)).items():
                        pooled[name] += values
                finally:
                    for p in procs.values():
                        p.close()
    here, there = median(pooled[HERE]), median(pooled[ref])
    count = len(pooled[HERE])
    return [
        Row(f"c=1 {HERE}: Sluice adds to the first token (p50)", round(here, 2), "ms", f"{count} turns"),
        Row(f"c=1 {ref}: Sluice adds to the first token (p50)", round(there, 2), "ms", f"{count} turns"),
        Row(
            f"c=1 difference ({HERE} minus {ref})",
            round(here - there, 2),
            "ms",
            "turns alternating, each start order once",
        ),
    ]


def main(fake: FakeOpenAI, options: Options) -> dict[str, Any]:
    assert options.against
    rows = compare(fake, options.against, options.turns)
    report(
        "chat-against", rows, {"against": options.against, "turns": options.turns, "ttft_ms": options.ttft_ms}
    )
    return {"rows": rows}
