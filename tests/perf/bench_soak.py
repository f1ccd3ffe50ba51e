"""`just bench soak [--minutes N] [--sample SECONDS]`: mixed load on two APIs and two workers for N minutes (2 by
default; the issue asks for 10), with faults injected, then a check from the database that nothing was lost or
doubled.

Load, all at once, through both APIs in turn:
  * workflow runs (template -> LLM on the fake OpenAI server -> end), blocking and streaming;
  * human-input forms: runs that pause on a form; most forms are submitted, the rest time out (4 s);
  * knowledge: documents indexed (create-by-text, static-64 embeddings) and ``/retrieve`` queries;
  * chat: conversations of an advanced-chat app (LLM with memory -> answer), turn after turn, blocking and
    streaming.
Faults, at fixed points of the run: a worker killed with ``kill -9`` (and started again 2 s later, as ``up``
does), PostgreSQL stopped for 5 s and started again (a server of the bench's own), and hostile documents (60,000
``[`` with the ``remove_urls_emails`` rule; a 5 MB text).

Every ``--sample`` seconds a line: operations finished per second and p99 latency per kind, errors, and the RSS of
each API and worker process. At the end: totals, p50/p99 per kind, RSS first/last/peak per process, and what the
database says: runs still active, runs that ended more or less than once, node events doubled, gaps in event
sequences, forms left waiting, documents left unfinished, runs the clients were told about but that are missing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import msgspec
import psycopg

from db import migrate, urls
from tests.perf.harness import Row, median, percentile, report
from tests.support.cluster import Cluster, OwnPostgres, run_report
from tests.support.fake_openai import FakeOpenAI

DEFAULT_MINUTES = 2.0
FORM_TIMEOUT_SECONDS = 4

RUN_APP = """
version: 0.5.0
kind: app
app: {name: Soak runs, mode: workflow}
workflow:
  graph:
    nodes:
      - {id: start, data: {type: start, title: Start, variables: [{variable: q, type: paragraph, required: true}]}}
      - {id: tpl, data: {type: template-transform, title: T, template: "Q: {{ q }}", variables: [{variable: q, value_selector: [start, q]}]}}
      - id: llm
        data:
          type: llm
          title: Model
          model: {provider: openai, name: soak, mode: chat}
          prompt_template: [{role: user, text: "{{#tpl.output#}}"}]
      - {id: end, data: {type: end, title: End, outputs: [{variable: text, value_selector: [llm, text]}]}}
    edges:
      - {id: e1, source: start, target: tpl}
      - {id: e2, source: tpl, target: llm}
      - {id: e3, source: llm, target: end}
"""

FORM_APP = f"""
version: 0.5.0
kind: app
app: {{name: Soak forms, mode: workflow}}
workflow:
  graph:
    nodes:
      - {{id: start, data: {{type: start, title: Start, variables: [{{variable: doc, type: text-input, required: true}}]}}}}
      - id: ask
        data:
          type: human-input
          title: Approve?
          form_content: "Review {{{{#start.doc#}}}}: {{{{#$output.comment#}}}}"
          inputs: [{{type: paragraph, output_variable_name: comment}}]
          user_actions: [{{id: approve, title: Approve}}]
          timeout: {FORM_TIMEOUT_SECONDS}
          timeout_unit: second
      - {{id: done, data: {{type: end, title: Done, outputs: [{{variable: comment, value_selector: [ask, comment]}}]}}}}
      - {{id: late, data: {{type: end, title: Late, outputs: [{{variable: doc, value_selector: [start, doc]}}]}}}}
    edges:
      - {{id: e1, source: start, target: ask}}
      - {{id: e2, source: ask, target: done, sourceHandle: approve}}
      - {{id: e3, source: ask, target: late, sourceHandle: __timeout}}
"""

CHAT_APP = """
version: 0.5.0
kind: app
app: {name: Soak chat, mode: advanced-chat}
workflow:
  graph:
    nodes:
      - {id: start, data: {type: start, title: Start, variables: []}}
      - id: llm
        data:
          type: llm
          title: Model
          model: {provider: openai, name: soak, mode: chat}
          prompt_template: [{role: system, text: "Be brief."}]
          memory: {window: {enabled: true, size: 6}, query_prompt_template: "{{#sys.query#}}"}
      - {id: answer, data: {type: answer, title: Answer, answer: "{{#llm.text#}}"}}
    edges:
      - {id: e1, source: start, target: llm}
      - {id: e2, source: llm, target: answer}
"""

WORDS = "river lamp orbit cedar quartz harbor signal meadow ledger copper violet summit".split()


def some_text(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words))


@dataclass
class Stats:
    """Latencies (ms) and outcomes per kind of operation, for the whole run and the current sample."""

    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    window: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: Counter[str] = field(default_factory=Counter)
    window_errors: Counter[str] = field(default_factory=Counter)
    run_ids: set[str] = field(default_factory=set)
    submitted_forms: int = 0
    documents: set[str] = field(default_factory=set)

    def ok(self, kind: str, began: float) -> None:
        ms = (time.perf_counter() - began) * 1000
        self.latencies[kind].append(ms)
        self.window[kind].append(ms)

    def failed(self, kind: str, what: str) -> None:
        self.errors[f"{kind}: {what}"] += 1
        self.window_errors[kind] += 1


class Soak:
    def __init__(self, cluster: Cluster, keys: dict[str, str], dataset_id: str, stats: Stats) -> None:
        self.cluster, self.keys, self.dataset_id, self.stats = cluster, keys, dataset_id, stats
        self.stop = asyncio.Event()
        self.turn = 0
        self.http = httpx.AsyncClient(timeout=180, limits=httpx.Limits(max_connections=64))

    def base(self) -> str:
        self.turn += 1
        return self.cluster.urls[self.turn % len(self.cluster.urls)]

    def headers(self, which: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[which]}"}

    async def guarded(self, kind: str, step: Callable[[], Awaitable[None]]) -> None:
        try:
            await step()
        except httpx.HTTPError as exc:
            self.stats.failed(kind, type(exc).__name__)
            await asyncio.sleep(0.5)

    async def run_client(self, n: int) -> None:
        rng = random.Random(n)
        while not self.stop.is_set():
            streaming = rng.random() < 0.5
            await self.guarded(
                "run_streaming" if streaming else "run_blocking",
                lambda streaming=streaming: self.one_run(rng, streaming),  # type: ignore[misc]
            )

    async def one_run(self, rng: random.Random, streaming: bool) -> None:
        kind = "run_streaming" if streaming else "run_blocking"
        body = {
            "inputs": {"q": some_text(rng, 12)},
            "response_mode": "streaming" if streaming else "blocking",
        }
        began = time.perf_counter()
        url = f"{self.base()}/v1/workflows/run"
        if not streaming:
            answer = await self.http.post(url, json={**body, "user": "soak"}, headers=self.headers("runs"))
            data = answer.json() if answer.status_code == 200 else {}
            if answer.status_code != 200 or data["data"]["status"] != "succeeded":
                self.stats.failed(
                    kind, str(answer.status_code if answer.status_code != 200 else data["data"]["status"])
                )
                await asyncio.sleep(0.5)
                return
            self.stats.run_ids.add(data["workflow_run_id"])
            self.stats.ok(kind, began)
            return
        finished = False
        async with self.http.stream(
            "POST", url, json={**body, "user": "soak"}, headers=self.headers("runs")
        ) as stream:
            if stream.status_code != 200:
                self.stats.failed(kind, str(stream.status_code))
                await asyncio.sleep(0.5)
                return
            async for line in stream.aiter_lines():
                if line.startswith("data: "):
                    event = msgspec.json.decode(line[6:])
                    self.stats.run_ids.add(event["workflow_run_id"])
                    finished = finished or (
                        event["event"] == "workflow_finished" and event["data"]["status"] == "succeeded"
                    )
        if finished:
            self.stats.ok(kind, began)
        else:
            self.stats.failed(kind, "stream ended without success")

    async def chat_client(self, n: int) -> None:
        """One end user talking turn after turn; a new conversation every ten turns."""
        rng = random.Random(2000 + n)
        conversation: list[str] = []
        while not self.stop.is_set():
            streaming = rng.random() < 0.5
            await self.guarded(
                "chat_streaming" if streaming else "chat_blocking",
                lambda streaming=streaming: self.one_turn(rng, n, conversation, streaming),  # type: ignore[misc]
            )

    async def one_turn(self, rng: random.Random, n: int, conversation: list[str], streaming: bool) -> None:
        """``conversation``: the conversation's id, then one entry per turn it has had."""
        kind = "chat_streaming" if streaming else "chat_blocking"
        if len(conversation) > 10:
            conversation.clear()
        body = {
            "query": some_text(rng, 6),
            "inputs": {},
            "response_mode": "streaming" if streaming else "blocking",
            "user": f"soak-{n}",
            "conversation_id": conversation[0] if conversation else "",
        }
        began = time.perf_counter()
        url = f"{self.base()}/v1/chat-messages"
        if not streaming:
            answer = await self.http.post(url, json=body, headers=self.headers("chat"))
            if answer.status_code != 200 or not answer.json().get("answer"):
                self.stats.failed(kind, str(answer.status_code))
                await asyncio.sleep(0.5)
                return
            data = answer.json()
            if data.get("workflow_run_id"):
                self.stats.run_ids.add(data["workflow_run_id"])
            if not conversation:
                conversation.append(data["conversation_id"])
            conversation.append("turn")
            self.stats.ok(kind, began)
            return
        ended = False
        async with self.http.stream("POST", url, json=body, headers=self.headers("chat")) as stream:
            if stream.status_code != 200:
                self.stats.failed(kind, str(stream.status_code))
                await asyncio.sleep(0.5)
                return
            async for line in stream.aiter_lines():
                if line.startswith("data: "):
                    event = msgspec.json.decode(line[6:])
                    if event.get("workflow_run_id"):
                        self.stats.run_ids.add(event["workflow_run_id"])
                    if event.get("conversation_id") and not conversation:
                        conversation.append(event["conversation_id"])
                    ended = ended or event["event"] == "message_end"
        if ended:
            conversation.append("turn")
            self.stats.ok(kind, began)
        else:
            self.stats.failed(kind, "stream ended without message_end")

    async def form_client(self, n: int) -> None:
        rng = random.Random(1000 + n)
        while not self.stop.is_set():
            await self.guarded("form_start", lambda: self.one_form(rng))

    async def one_form(self, rng: random.Random) -> None:
        began = time.perf_counter()
        answer = await self.http.post(
            f"{self.base()}/v1/workflows/run",
            json={"inputs": {"doc": some_text(rng, 3)}, "response_mode": "blocking", "user": "soak"},
            headers=self.headers("forms"),
        )
        data = answer.json().get("data", {}) if answer.status_code == 200 else {}
        if data.get("status") == "succeeded":
            # The form timed out before the blocking call saw the pause (the worker was stalled): not an error.
            self.stats.run_ids.add(answer.json()["workflow_run_id"])
            self.stats.ok("form_missed", began)
            return
        if data.get("status") != "paused":
            self.stats.failed(
                "form_start", str(answer.status_code if answer.status_code != 200 else data.get("status"))
            )
            await asyncio.sleep(0.5)
            return
        self.stats.run_ids.add(answer.json()["workflow_run_id"])
        self.stats.ok("form_start", began)
        if rng.random() < 0.3:
            return  # left to time out
        token = data["paused_nodes"][0]["pause_type"]["form_token"]
        await asyncio.sleep(rng.uniform(0.1, 2.0))
        began = time.perf_counter()
        submitted = await self.http.post(
            f"{self.base()}/v1/form/human_input/{token}",
            json={"inputs": {"comment": "ok"}, "action": "approve", "user": "soak"},
            headers=self.headers("forms"),
        )
        if submitted.status_code == 200:
            self.stats.submitted_forms += 1
            self.stats.ok("form_submit", began)
        else:
            self.stats.failed("form_submit", str(submitted.status_code))

    async def indexing_client(self) -> None:
        rng = random.Random(7)
        while not self.stop.is_set():
            await self.guarded(
                "index_document", lambda: self.one_document(some_text(rng, rng.randint(500, 3000)))
            )
            await asyncio.sleep(2.0)

    async def one_document(
        self, text: str, rule: dict[str, Any] | None = None, kind: str = "index_document"
    ) -> None:
        began = time.perf_counter()
        answer = await self.http.post(
            f"{self.base()}/v1/datasets/{self.dataset_id}/document/create-by-text",
            json={
                "name": f"doc-{time.time_ns()}.txt",
                "text": text,
                "process_rule": rule or {"mode": "automatic"},
            },
            headers=self.headers("dataset"),
        )
        if answer.status_code == 200:
            self.stats.documents.add(answer.json()["document"]["id"])
            self.stats.ok(kind, began)
        else:
            self.stats.failed(kind, str(answer.status_code))

    async def retrieval_client(self) -> None:
        rng = random.Random(11)
        while not self.stop.is_set():
            await self.guarded("retrieve", lambda: self.one_query(rng))
            await asyncio.sleep(0.2)

    async def one_query(self, rng: random.Random) -> None:
        began = time.perf_counter()
        answer = await self.http.post(
            f"{self.base()}/v1/datasets/{self.dataset_id}/retrieve",
            json={"query": some_text(rng, 3)},
            headers=self.headers("dataset"),
        )
        if answer.status_code == 200:
            self.stats.ok("retrieve", began)
        else:
            self.stats.failed("retrieve", str(answer.status_code))

    async def hostile_documents(self) -> None:
        urls_rule = {
            "mode": "custom",
            "rules": {
                "pre_processing_rules": [{"id": "remove_urls_emails", "enabled": True}],
                "segmentation": {"separator": "\\n", "max_tokens": 500},
            },
        }
        await self.guarded(
            "hostile_document", lambda: self.one_document("[" * 60_000, urls_rule, "hostile_document")
        )
        big = some_text(random.Random(3), 800_000)  # ~5 MB
        await self.guarded("hostile_document", lambda: self.one_document(big, None, "hostile_document"))


def rss_mib(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except FileNotFoundError:
        pass
    return float("nan")


def processes(cluster: Cluster) -> dict[str, int]:
    named = {f"api-{i}": proc.pid for i, proc in enumerate(cluster.apis)}
    named |= {name: proc.pid for name, proc in cluster.workers.items() if proc.poll() is None}
    return named


async def sampler(
    soak: Soak,
    cluster: Cluster,
    every: float,
    started: float,
    samples: list[dict[str, Any]],
    kinds: list[str],
) -> None:
    header = "  t(s)  " + "  ".join(f"{k[:14]:>14}" for k in kinds) + "   errors  RSS MiB by process"
    print(header)
    while not soak.stop.is_set():
        await asyncio.sleep(every)
        stats = soak.stats
        row: dict[str, Any] = {"t": round(time.monotonic() - started, 1), "ops": {}, "p99_ms": {}}
        cells = []
        for kind in kinds:
            window = stats.window.pop(kind, [])
            rate = len(window) / every
            p99 = percentile(window, 99) if window else float("nan")
            row["ops"][kind], row["p99_ms"][kind] = round(rate, 2), round(p99, 1)
            cells.append(f"{rate:5.1f}/s {p99:6.0f}")
        row["errors"] = dict(stats.window_errors)
        stats.window_errors.clear()
        row["rss_mib"] = {name: round(rss_mib(pid), 1) for name, pid in processes(cluster).items()}
        samples.append(row)
        rss = " ".join(f"{n}={v:.0f}" for n, v in row["rss_mib"].items())
        print(
            f"{row['t']:6.0f}  " + "  ".join(cells) + f"   {sum(row['errors'].values()):6d}  {rss}",
            flush=True,
        )


async def faults(soak: Soak, cluster: Cluster, postgres: OwnPostgres, seconds: float, log: list[str]) -> None:
    async def at(fraction: float) -> bool:
        await asyncio.wait(
            [asyncio.create_task(soak.stop.wait())],
            timeout=max(0.0, fraction * seconds - (time.monotonic() - t0)),
        )
        return not soak.stop.is_set()

    t0 = time.monotonic()
    if await at(0.2):
        cluster.kill_worker("worker-0")
        log.append(f"{time.monotonic() - t0:.0f}s: worker-0 killed with kill -9")
        await asyncio.sleep(2)
        cluster.start_worker("worker-2")
        log.append(f"{time.monotonic() - t0:.0f}s: worker-2 started in its place")
    if await at(0.45):
        await asyncio.to_thread(postgres.stop)
        log.append(f"{time.monotonic() - t0:.0f}s: PostgreSQL stopped")
        await asyncio.sleep(5)
        await asyncio.to_thread(postgres.start)
        log.append(f"{time.monotonic() - t0:.0f}s: PostgreSQL started again")
    if await at(0.7):
        log.append(f"{time.monotonic() - t0:.0f}s: hostile documents sent")
        await soak.hostile_documents()


async def setup(cluster: Cluster) -> tuple[dict[str, str], str]:
    admin = {"Authorization": f"Bearer {cluster.env['SLUICE_ADMIN_TOKEN']}"}
    base = cluster.urls[0]
    async with httpx.AsyncClient(base_url=base, headers=admin, timeout=60) as http:
        keys = {}
        for name, dsl in (("runs", RUN_APP), ("forms", FORM_APP), ("chat", CHAT_APP)):
            imported = (await http.post("/console/api/apps/imports", json={"yaml_content": dsl})).json()
            keys[name] = (await http.post(f"/console/api/apps/{imported['app_id']}/api-keys")).json()["token"]
        keys["dataset"] = (await http.post("/console/api/datasets/api-keys")).json()["token"]
        dataset = await http.post(
            "/v1/datasets",
            json={
                "name": "soak",
                "indexing_technique": "high_quality",
                "embedding_model_provider": "local",
                "embedding_model": "static-64",
            },
            headers={"Authorization": f"Bearer {keys['dataset']}"},
        )
        assert dataset.status_code == 200, dataset.text  # Dify answers 200 here
    return keys, dataset.json()["id"]


def database_check(database_url: str, stats: Stats) -> dict[str, Any]:
    checked = run_report(database_url)
    with psycopg.connect(urls.libpq(database_url)) as conn:
        known = {str(r[0]) for r in conn.execute("SELECT id FROM workflow_runs").fetchall()}
        forms = dict(
            conn.execute("SELECT status, count(*) FROM human_input_forms GROUP BY status").fetchall()
        )
        documents = dict(
            conn.execute("SELECT indexing_status, count(*) FROM documents GROUP BY 1").fetchall()
        )
        jobs = dict(
            conn.execute("SELECT status::text, count(*) FROM procrastinate_jobs GROUP BY 1").fetchall()
        )
    checked |= {
        "runs_told_to_clients": len(stats.run_ids),
        "runs_missing": sorted(stats.run_ids - known),
        "forms": forms,
        "forms_submitted_by_clients": stats.submitted_forms,
        "documents": documents,
        "jobs": jobs,
    }
    return checked


async def drain(database_url: str, timeout: float) -> float:
    """Wait until no run is active and no document is being indexed; returns how long that took."""
    began = time.monotonic()
    while time.monotonic() - began < timeout:
        with psycopg.connect(urls.libpq(database_url)) as conn:
            active = conn.execute(
                "SELECT (SELECT count(*) FROM workflow_runs WHERE status IN ('running', 'paused')) + "
                "(SELECT count(*) FROM documents WHERE indexing_status NOT IN ('completed', 'error', 'paused'))"
            ).fetchone()
        if active and active[0] == 0:
            break
        await asyncio.sleep(1)
    return time.monotonic() - began


async def soak(minutes: float, every: float) -> tuple[list[Row], dict[str, Any]]:
    seconds = minutes * 60
    postgres = OwnPostgres()
    fake = FakeOpenAI().start()
    logs = Path(tempfile.mkdtemp(prefix="sluice-soak-"))
    cluster: Cluster | None = None
    try:
        migrate.upgrade(postgres.url)
        cluster = Cluster(
            postgres.url,
            logs,
            apis=2,
            workers=2,
            worker_module="jobs",
            env={
                "OPENAI_API_BASE": fake.base_url,
                "EMBEDDING_PROVIDER": "local",
                "EMBEDDING_MODEL": "static-64",
                "SLUICE_STALLED_JOB_SECONDS": "20",
                "SLUICE_RUN_RECOVERY_SECONDS": "10",
                "SLUICE_FORM_RATE_LIMIT": "100000",
                "LOG_LEVEL": "WARNING",
            },
        )
        cluster.wait_ready()
        keys, dataset_id = await setup(cluster)
        stats = Stats()
        runner = Soak(cluster, keys, dataset_id, stats)
        kinds = [
            "run_blocking",
            "run_streaming",
            "form_start",
            "form_submit",
            "index_document",
            "retrieve",
            "chat_blocking",
            "chat_streaming",
        ]
        samples: list[dict[str, Any]] = []
        fault_log: list[str] = []
        started = time.monotonic()
        print(f"\n== soak: {minutes:g} min, 2 APIs + 2 workers, logs in {logs} ==")
        tasks = [
            *(asyncio.create_task(runner.run_client(i)) for i in range(4)),
            *(asyncio.create_task(runner.form_client(i)) for i in range(2)),
            *(asyncio.create_task(runner.chat_client(i)) for i in range(2)),
            asyncio.create_task(runner.indexing_client()),
            asyncio.create_task(runner.retrieval_client()),
            asyncio.create_task(sampler(runner, cluster, every, started, samples, kinds)),
            asyncio.create_task(faults(runner, cluster, postgres, seconds, fault_log)),
        ]
        await asyncio.sleep(seconds)
        runner.stop.set()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(task, timeout=240)
        drained = await drain(postgres.url, 240)
        checked = database_check(postgres.url, stats)
        peaks = {name: round(peak_hwm(pid), 1) for name, pid in processes(cluster).items()}
        await runner.http.aclose()
    finally:
        if cluster is not None:
            cluster.stop()
        fake.stop()
        postgres.close()
    return summarize(seconds, stats, samples, checked, peaks, fault_log, drained, kinds), {
        "minutes": minutes,
        "sample_seconds": every,
        "faults": fault_log,
        "samples": samples,
        "database": checked,
        "errors": dict(stats.errors),
    }


def peak_hwm(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except FileNotFoundError:
        pass
    return float("nan")


def summarize(
    seconds: float,
    stats: Stats,
    samples: list[dict[str, Any]],
    checked: dict[str, Any],
    peaks: dict[str, float],
    fault_log: list[str],
    drained: float,
    kinds: list[str],
) -> list[Row]:
    rows = []
    for kind in [*kinds, "form_missed", "hostile_document"]:
        done = stats.latencies.get(kind, [])
        if not done:
            continue
        rows.append(
            Row(
                f"{kind} ok / per s / p50 / p99",
                f"{len(done)} / {len(done) / seconds:.2f} / {median(done):.0f} / {percentile(done, 99):.0f}",
                "ms",
            )
        )
    rows.append(
        Row(
            "client errors",
            sum(stats.errors.values()),
            "",
            "; ".join(f"{k} x{n}" for k, n in stats.errors.most_common(8)),
        )
    )
    for name in sorted({n for s in samples for n in s["rss_mib"]}):
        series = [s["rss_mib"][name] for s in samples if name in s["rss_mib"]]
        if series:
            rows.append(
                Row(
                    f"RSS {name} first / last / max",
                    f"{series[0]:.0f} / {series[-1]:.0f} / {max(series):.0f}",
                    "MiB",
                    f"peak (VmHWM) {peaks.get(name, float('nan')):.0f} MiB"
                    if name in peaks
                    else "gone (killed)",
                )
            )
    rows += [
        Row("faults", "; ".join(fault_log)),
        Row("drained after load stopped", round(drained, 1), "s"),
        Row("runs in database by status", str(checked["statuses"])),
        Row("runs still active", checked["active"]),
        Row("runs ended more or less than once", len(checked["ended_not_once"])),
        Row("node events doubled", len(checked["doubled_node_events"])),
        Row("runs with a gap in their events", len(checked["sequence_gaps"])),
        Row(
            "runs clients were told about / missing",
            f"{checked['runs_told_to_clients']} / {len(checked['runs_missing'])}",
        ),
        Row(
            "forms by status / submitted by clients",
            f"{checked['forms']} / {checked['forms_submitted_by_clients']}",
        ),
        Row("documents by status", str(checked["documents"])),
        Row("queue jobs by status", str(checked["jobs"])),
    ]
    return rows


def main(args: list[str]) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="just bench soak", description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=DEFAULT_MINUTES, help="how long the load runs")
    parser.add_argument("--sample", type=float, default=10.0, help="seconds between samples")
    options = parser.parse_args(args)
    rows, meta = asyncio.run(soak(options.minutes, options.sample))
    report("soak", rows, meta)
    return {"rows": rows}
