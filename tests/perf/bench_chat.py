"""`just bench chat`: chat turns (start -> LLM -> answer) through the real API and worker against a streaming
fake model with a set time to first token and token interval: the time from ``POST /v1/chat-messages``
(streaming) to the first ``message`` event carrying text, next to the fake model's own time to first token
measured the same way in the same run (a streaming call straight to it), and turns/s at 1 and 8 concurrent
conversations (each conversation's turns one after the other, as Sluice allows).

What Sluice adds to the first token is the difference of the two medians (target <= 15 ms). At c=1 each turn
comes right after one call straight to the model, so both are measured at the same moments (on a shared machine
a noisy minute slows both); at c=8 the model alone is measured first, then the conversations. The fake runs in
this process's thread, the API and the worker are processes of their own, whose peak RSS is reported.

Options: ``--ttft-ms`` (default 100), ``--interval-ms`` (default 10), ``--tokens`` (default 20), ``--turns``
(turns per level and conversation count, default 60), ``--against REF``: this checkout next to git revision REF,
side by side at c=1 (``tests/perf/versus.py``)."""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

import httpx

from tests.perf.harness import Processes, Row, median, percentile, report, run_with_processes
from tests.support.fake_openai import FakeOpenAI

LEVELS = (1, 8)
TARGET_ADDED_P50_MS = 15.0

CHAT_APP = """
version: 0.1.5
kind: app
app: {name: Bench chat, mode: advanced-chat}
workflow:
  graph:
    nodes:
      - {id: start, data: {type: start, title: Start, variables: []}}
      - id: llm
        data:
          type: llm
          title: LLM
          model: {provider: openai, name: bench, mode: chat, completion_params: {}}
          prompt_template:
            - {role: system, text: You answer briefly.}
            - {role: user, text: "{{#sys.query#}}"}
      - {id: answer, data: {type: answer, title: Answer, answer: "{{#llm.text#}}"}}
    edges:
      - {id: e1, source: start, target: llm}
      - {id: e2, source: llm, target: answer}
"""


class ChatProcesses(Processes):
    """The API and worker, their LLM calls sent to the fake."""

    llm_base_url = ""

    def env(self, **extra: str) -> dict[str, str]:
        return super().env(OPENAI_API_BASE=self.llm_base_url, **extra)


class Options(argparse.Namespace):
    ttft_ms: float
    interval_ms: float
    tokens: int
    turns: int
    against: str | None


def parse(args: list[str]) -> Options:
    parser = argparse.ArgumentParser(prog="just bench chat")
    parser.add_argument("--ttft-ms", type=float, default=100.0)
    parser.add_argument("--interval-ms", type=float, default=10.0)
    parser.add_argument("--tokens", type=int, default=20)
    parser.add_argument("--turns", type=int, default=60)
    parser.add_argument("--against", default=None, help="a git revision to compare this checkout with")
    return parser.parse_args(args, namespace=Options())


async def model_first_token(http: httpx.AsyncClient, base_url: str, query: str) -> float:
    """Milliseconds from a streaming call straight to the fake model to its first content delta."""
    body = {"model": "bench", "stream": True, "messages": [{"role": "user", "content": query}]}
    began = time.perf_counter()
    async with http.stream("POST", f"{base_url}/chat/completions", json=body) as response:
        async for line in response.aiter_lines():
            if line.startswith("data: {"):
                choices = json.loads(line[6:])["choices"]
                if choices and choices[0]["delta"].get("content"):
                    return (time.perf_counter() - began) * 1000
    raise AssertionError("the fake model sent no token")


class Turn:
    """One streamed turn: time to the first ``message`` event with text, and to the end of the stream."""

    def __init__(self, first_ms: float, total_ms: float, conversation_id: str) -> None:
        self.first_ms, self.total_ms, self.conversation_id = first_ms, total_ms, conversation_id


async def chat_turn(
    http: httpx.AsyncClient, headers: dict[str, str], query: str, conversation_id: str | None, user: str
) -> Turn:
    body: dict[str, Any] = {
        "inputs": {},
        "query": query,
        "user": user,
        "response_mode": "streaming",
        "auto_generate_name": False,
    }
    if conversation_id:
        body["conversation_id"] = conversation_id
    first = None
    last_event = ""
    began = time.perf_counter()
    async with http.stream("POST", "/v1/chat-messages", json=body, headers=headers) as response:
        assert response.status_code == 200, await response.aread()
        async for line in response.aiter_lines():
            if not line.startswith("data: "):
                continue
            event = json.loads(line[6:])
            if first is None and event["event"] == "message" and event["answer"]:
                first = (time.perf_counter() - began) * 1000
            conversation_id = conversation_id or event["conversation_id"]
            last_event = event["event"]
    total = (time.perf_counter() - began) * 1000
    assert first is not None and last_event == "workflow_finished", last_event
    assert conversation_id is not None
    return Turn(first, total, conversation_id)


async def conversations(
    http: httpx.AsyncClient, headers: dict[str, str], level: int, turns: int
) -> tuple[float, list[Turn]]:
    """``turns`` turns spread over ``level`` conversations held at once; (turns per second, the turns)."""
    done: list[Turn] = []

    async def converse(n: int) -> None:
        conversation = None
        for i in range(turns // level):
            turn = await chat_turn(http, headers, f"question {i} of {n}", conversation, f"bench-{level}-{n}")
            conversation = turn.conversation_id
            done.append(turn)

    began = time.perf_counter()
    await asyncio.gather(*(converse(n) for n in range(level)))
    return len(done) / (time.perf_counter() - began), done


async def side_by_side(
    http: httpx.AsyncClient, direct: httpx.AsyncClient, model_url: str, headers: dict[str, str], turns: int
) -> tuple[float, list[Turn], list[float]]:
    """One conversation, each turn right after a call straight to the model: both see the same machine at the
    same moment (a noisy neighbour slows both). (turns per second of turn time, the turns, the model's times)"""
    done: list[Turn] = []
    model: list[float] = []
    conversation = None
    for i in range(turns):
        model.append(await model_first_token(direct, model_url, f"question {i}"))
        turn = await chat_turn(http, headers, f"question {i}", conversation, "bench-1")
        conversation = turn.conversation_id
        done.append(turn)
    return len(done) / (sum(t.total_ms for t in done) / 1000), done, model


async def model_alone(http: httpx.AsyncClient, base_url: str, level: int, count: int) -> list[float]:
    """The fake model's own time to first token, ``level`` calls in flight."""
    out: list[float] = []

    async def caller(n: int) -> None:
        for i in range(count // level):
            out.append(await model_first_token(http, base_url, f"question {i} of {n}"))

    await asyncio.gather(*(caller(n) for n in range(level)))
    return out


async def app_key(http: httpx.AsyncClient) -> dict[str, str]:
    """The bench chat app imported through the console, and the headers of a new key of it."""
    admin = {"Authorization": "Bearer bench-admin"}
    imported = (
        await http.post("/console/api/apps/imports", json={"yaml_content": CHAT_APP}, headers=admin)
    ).json()
    key = (await http.post(f"/console/api/apps/{imported['app_id']}/api-keys", headers=admin)).json()
    return {"Authorization": f"Bearer {key['token']}"}


def measure_with(fake: FakeOpenAI, options: Options) -> Any:
    async def measure(procs: Processes) -> list[Row]:
        rows: list[Row] = []
        limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
        async with (
            httpx.AsyncClient(base_url=procs.base_url, timeout=120, limits=limits) as http,
            httpx.AsyncClient(timeout=60, limits=limits) as direct,
        ):
            headers = await app_key(http)
            await conversations(http, headers, 2, 10)  # warm-up
            await model_alone(direct, fake.base_url, 2, 10)
            for level in LEVELS:
                if level == 1:
                    rate, turns, model = await side_by_side(
                        http, direct, fake.base_url, headers, options.turns
                    )
                else:
                    model = await model_alone(direct, fake.base_url, level, options.turns)
                    rate, turns = await conversations(http, headers, level, options.turns)
                firsts = [t.first_ms for t in turns]
                added = median(firsts) - median(model)
                verdict = ""
                if level == 1:
                    met = added <= TARGET_ADDED_P50_MS
                    verdict = f"; target <= {TARGET_ADDED_P50_MS:g} ms: {'MET' if met else 'MISSED'}"
                rows += [
                    Row(
                        f"c={level} fake model's own time to first token p50 / p95",
                        f"{median(model):.1f} / {percentile(model, 95):.1f}",
                        "ms",
                        f"{len(model)} streaming calls straight to it"
                        + (", each right before a turn" if level == 1 else ""),
                    ),
                    Row(
                        f"c={level} chat time to first message event p50 / p95",
                        f"{median(firsts):.1f} / {percentile(firsts, 95):.1f}",
                        "ms",
                        f"{len(turns)} streaming turns over {level} conversation(s)",
                    ),
                    Row(
                        f"c={level} Sluice adds to the first token (p50)",
                        round(added, 1),
                        "ms",
                        f"chat p50 minus model p50{verdict}",
                    ),
                    Row(
                        f"c={level} whole turn p50 / p95",
                        f"{median([t.total_ms for t in turns]):.1f} / "
                        f"{percentile([t.total_ms for t in turns], 95):.1f}",
                        "ms",
                        "to workflow_finished",
                    ),
                    Row(f"c={level} turns/s", round(rate, 1), "turns/s"),
                ]
        return rows

    return measure


def main(args: list[str]) -> dict[str, Any]:
    options = parse(args)
    fake = FakeOpenAI(
        first_token_delay=options.ttft_ms / 1000, token_interval=options.interval_ms / 1000
    ).start()
    fake.add_rule("question", " ".join(f"tok{i}" for i in range(options.tokens)))
    try:
        if options.against:
            from tests.perf import versus  # it builds on this module

            return versus.main(fake, options)

        def processes(database_url: str) -> ChatProcesses:
            procs = ChatProcesses(database_url)
            procs.llm_base_url = fake.base_url
            return procs

        rows = run_with_processes(measure_with(fake, options), processes)
    finally:
        fake.stop()
    report(
        "chat",
        rows,
        {
            "levels": LEVELS,
            "ttft_ms": options.ttft_ms,
            "interval_ms": options.interval_ms,
            "tokens": options.tokens,
            "turns": options.turns,
        },
    )
    return {"rows": rows}
