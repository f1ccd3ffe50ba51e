"""`just bench timeouts`: how late human-input deadlines are applied by the real worker process, with 10,000
and with 100,000 forms waiting.

Setup is real but fast: ONE paused run is made through the API and the worker (start -> human-input without a
node timeout -> `done` on `approve`, `late` on `__timeout`), then cloned in SQL (see ``tests/perf/clones.py``)
into thousands of paused runs with their forms, pauses, node executions, events and recipients. Node deadlines
are then set on chosen forms and the deadline alarm moved for them, exactly as ``create_form`` does
(``app.human_input.alarm.ensure_alarm``). From there on everything is the real path in the worker process:
the alarm job -> ``handle_deadlines`` -> ``transitions.resolve`` -> resume jobs -> engine (the benchmark only
reads the database). After each cloning the planner's statistics are refreshed (ANALYZE), as autovacuum would.
All with default worker settings.

1. Fetch cost: one ``procrastinate_fetch_job_v2`` call when nothing is due (what every worker does whenever it
   looks for work), median of many, in a rolled-back transaction.
2. Light load: 100 node deadlines spread over 5 s on an idle worker. Lateness = ``resolved_at`` (database clock,
   when the form is handled) - deadline; also the resumed node's start and the run's end.
3. Storm: 10,000 forms whose node deadlines all fall in the same second: time until all are handled
   (committed) and until every run has resumed and finished.
4. Steps 1 and 2 again with 100,000 forms waiting; the ratios to the 10,000-form figures are printed.
"""

from __future__ import annotations

import asyncio
import datetime
import math
import time
import uuid
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine

from app.human_input.alarm import ensure_alarm
from db import urls
from tests.perf.clones import Template, clone_paused_runs, make_template
from tests.perf.harness import Processes, Row, percentile, report, run_with_processes

SECRET_KEY = "bench-timeouts-secret-key"
WAITING = 10_000
MANY_WAITING = 100_000
#: A light load, where the worker sits idle between deadlines.
IDLE_FORMS = 100
IDLE_SECONDS = 5.0
SPREAD_LEAD_SECONDS = 0.5
STORM_FORMS = 10_000
OBSERVE_INTERVAL = 0.05
FETCH_SAMPLES = 300
#: Give up waiting for storm runs to finish after this long (the table then says how many did).
STORM_FINISH_CAP_SECONDS = 200.0
TARGET_P99_LATENESS_S = 0.1
TARGET_STORM_FINISHED_S = 30.0

APPROVAL_APP = """
version: 0.5.0
kind: app
app: {name: Bench approval, mode: workflow}
workflow:
  graph:
    nodes:
      - {id: start, data: {type: start, title: Start, variables: [{variable: doc, type: text-input, required: true}]}}
      - id: ask
        data:
          type: human-input
          title: Approve?
          form_content: "Please review **{{#start.doc#}}**. Comment: {{#$output.comment#}}"
          inputs: [{type: paragraph, output_variable_name: comment}]
          user_actions: [{id: approve, title: Approve, button_style: primary}]
      - {id: done, data: {type: end, title: Done, outputs: [{variable: action, value_selector: [ask, __action_id]}]}}
      - {id: late, data: {type: end, title: Late, outputs: [{variable: doc, value_selector: [start, doc]}]}}
    edges:
      - {id: e1, source: start, target: ask}
      - {id: e2, source: ask, target: done, sourceHandle: approve}
      - {id: e3, source: ask, target: late, sourceHandle: __timeout}
"""


class TimeoutProcesses(Processes):
    """The benchmark's API and worker, with the secret key that form tokens need."""

    def env(self, **extra: str) -> dict[str, str]:
        return super().env(SLUICE_SECRET_KEY=SECRET_KEY, **extra)


async def paused_template_run(base_url: str) -> uuid.UUID:
    """One run paused at `ask`, made through the real API and worker."""
    admin = {"Authorization": "Bearer bench-admin"}
    async with httpx.AsyncClient(base_url=base_url, timeout=60) as http:
        imported = await http.post(
            "/console/api/apps/imports", json={"yaml_content": APPROVAL_APP}, headers=admin
        )
        app_id = imported.json()["app_id"]
        key = (await http.post(f"/console/api/apps/{app_id}/api-keys", headers=admin)).json()["token"]
        response = await http.post(
            "/v1/workflows/run",
            json={"inputs": {"doc": "the plan"}, "response_mode": "blocking", "user": "bench"},
            headers={"Authorization": f"Bearer {key}"},
        )
        data = response.json()["data"]
        assert data["status"] == "paused", response.text
        return uuid.UUID(data["id"])


async def db_now(engine: AsyncEngine) -> datetime.datetime:
    async with engine.connect() as conn:
        now = await conn.scalar(text("SELECT clock_timestamp()"))
    assert isinstance(now, datetime.datetime)
    return now


async def waiting_count(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int(
            await conn.scalar(text("SELECT count(*) FROM human_input_forms WHERE status = 'waiting'")) or 0
        )


async def set_node_deadlines(
    engine: AsyncEngine, form_ids: list[uuid.UUID], deadlines: list[datetime.datetime]
) -> None:
    """What ``create_form`` does for a node timeout: the form's ``expiration_time``, and the alarm moved."""
    async with engine.begin() as conn:
        session = AsyncSession(bind=conn)
        await session.execute(
            text(
                """
                UPDATE human_input_forms f SET expiration_time = d.deadline
                FROM unnest(CAST(:ids AS uuid[]), CAST(:deadlines AS timestamptz[])) AS d(id, deadline)
                WHERE f.id = d.id
                """
            ),
            {"ids": form_ids, "deadlines": deadlines},
        )
        await ensure_alarm(session, min(deadlines))


async def fetch_cost_ms(engine: AsyncEngine) -> float:
    """Median time of one job fetch with nothing due, in a transaction that is rolled back (no job is taken)."""
    samples = []
    async with engine.connect() as conn:
        for _ in range(FETCH_SAMPLES):
            began = time.perf_counter()
            await conn.execute(
                text(
                    "SELECT procrastinate_fetch_job_v2(ARRAY['workflows', 'timers', 'indexing', 'mail'], NULL)"
                )
            )
            samples.append((time.perf_counter() - began) * 1000)
            await conn.rollback()
    return percentile(samples, 50)


class Observer:
    """Polls which forms are no longer waiting: the time their handling became visible (committed)."""

    def __init__(self, engine: AsyncEngine, form_ids: list[uuid.UUID]) -> None:
        self.engine, self.pending = engine, set(form_ids)
        self.seen: dict[uuid.UUID, datetime.datetime] = {}

    async def run(self, timeout: float) -> bool:
        """Until every form is seen (True) or ``timeout`` seconds passed (False)."""
        deadline = time.monotonic() + timeout
        query = text("SELECT id FROM human_input_forms WHERE id = ANY(:ids) AND status <> 'waiting'")
        while self.pending and time.monotonic() < deadline:
            async with self.engine.connect() as conn:
                now = await conn.scalar(text("SELECT clock_timestamp()"))
                rows = await conn.execute(query, {"ids": list(self.pending)})
            for (form_id,) in rows:
                self.seen[form_id] = now
                self.pending.discard(form_id)
            await asyncio.sleep(OBSERVE_INTERVAL)
        return not self.pending


async def wait_storm_handled(engine: AsyncEngine, second: datetime.datetime, timeout: float) -> float | None:
    """Seconds from ``second`` until no form with a deadline inside it is still waiting (polled; committed
    changes only). None: some were still waiting after ``timeout`` seconds."""
    until = time.monotonic() + timeout
    query = text(
        """
        SELECT clock_timestamp(), count(*) FROM human_input_forms
        WHERE status = 'waiting' AND expiration_time >= :second
          AND expiration_time < :second + interval '1 second'
        """
    )
    while time.monotonic() < until:
        async with engine.connect() as conn:
            now, waiting = (await conn.execute(query, {"second": second})).one()
        if not waiting:
            return float((now - second).total_seconds())
        await asyncio.sleep(OBSERVE_INTERVAL)
    return None


async def wait_runs_finished(engine: AsyncEngine, run_ids: list[uuid.UUID], timeout: float) -> int:
    """Wait until none of the runs is running or paused; returns how many are still active at the end."""
    deadline = time.monotonic() + timeout
    while True:
        async with engine.connect() as conn:
            active = int(
                await conn.scalar(
                    text(
                        "SELECT count(*) FROM workflow_runs WHERE id = ANY(:ids) AND status IN ('running', 'paused')"
                    ),
                    {"ids": run_ids},
                )
                or 0
            )
        if not active or time.monotonic() >= deadline:
            return active
        await asyncio.sleep(0.25)


class Outcome:
    """Per form: lateness of handling, of the resumed node's start and of the run's end (seconds)."""

    def __init__(self, rows: list[Any]) -> None:
        self.handled = [r.handled for r in rows if r.handled is not None]
        self.resumed = [r.resumed for r in rows if r.resumed is not None]
        self.finished = [r.finished for r in rows if r.finished is not None]
        self.statuses = {r.status for r in rows}
        self.run_statuses = {r.run_status for r in rows}


async def outcome(engine: AsyncEngine, form_ids: list[uuid.UUID]) -> Outcome:
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                text(
                    """
                    SELECT f.status, r.status AS run_status,
                           extract(epoch FROM f.resolved_at - f.expiration_time) AS handled,
                           extract(epoch FROM (
                               SELECT min(e.created_at) FROM workflow_run_events e
                               WHERE e.run_id = f.run_id AND e.event = 'node_started'
                                 AND e.data->>'node_id' = 'late'
                           ) - f.expiration_time) AS resumed,
                           extract(epoch FROM r.finished_at - f.expiration_time) AS finished
                    FROM human_input_forms f JOIN workflow_runs r ON r.id = f.run_id
                    WHERE f.id = ANY(:ids)
                    """
                ),
                {"ids": form_ids},
            )
        ).all()
    return Outcome(list(rows))


def ms(values: list[float], q: float) -> float:
    return round(percentile(values, q) * 1000, 1)


async def fill(engine: AsyncEngine, template: Template, waiting: int) -> float:
    """Clone until ``waiting`` forms wait; the seconds it took."""
    began = time.perf_counter()
    missing = waiting - await waiting_count(engine)
    while missing > 0:
        await clone_paused_runs(engine, template, min(missing, 20_000), analyze=missing <= 20_000)
        missing = waiting - await waiting_count(engine)
    return time.perf_counter() - began


async def light_load(engine: AsyncEngine, template: Template, label: str) -> tuple[list[Row], float]:
    """IDLE_FORMS node deadlines spread over IDLE_SECONDS on an idle worker; rows and the p99 lateness (s)."""
    async with engine.connect() as conn:
        chosen = (
            await conn.execute(
                text(
                    """
                    SELECT id, run_id FROM human_input_forms
                    WHERE status = 'waiting' AND expiration_time IS NULL AND run_id <> :template
                    ORDER BY random() LIMIT :n
                    """
                ),
                {"template": template.run_id, "n": IDLE_FORMS},
            )
        ).all()
    form_ids = [r[0] for r in chosen]
    run_ids = [r[1] for r in chosen]
    first = await db_now(engine) + datetime.timedelta(seconds=SPREAD_LEAD_SECONDS)
    step = IDLE_SECONDS / IDLE_FORMS
    deadlines = [first + datetime.timedelta(seconds=(i + 0.5) * step) for i in range(IDLE_FORMS)]
    await set_node_deadlines(engine, form_ids, deadlines)
    observer = Observer(engine, form_ids)
    all_seen = await observer.run(SPREAD_LEAD_SECONDS + IDLE_SECONDS + 60)
    active = await wait_runs_finished(engine, run_ids, 60)
    result = await outcome(engine, form_ids)
    p99 = percentile(result.handled, 99)
    verdict = "MET" if p99 <= TARGET_P99_LATENESS_S else "MISSED"
    rows = [
        Row(
            f"{label}: forms timed out",
            len(result.handled),
            f"/ {IDLE_FORMS}",
            f"statuses {sorted(result.statuses)}; runs {sorted(result.run_statuses)}"
            + ("" if all_seen and not active else f"; {active} runs still active"),
        ),
        Row(
            f"{label}: lateness p50 / p99 / max",
            f"{ms(result.handled, 50)} / {ms(result.handled, 99)} / {ms(result.handled, 100)}",
            "ms",
            f"resolved_at - deadline; target p99 <= 100: {verdict}",
        ),
        Row(
            f"{label}: resumed node started p50 / p99",
            f"{ms(result.resumed, 50)} / {ms(result.resumed, 99)}",
            "ms",
            "node_started of `late` (after __timeout) - deadline",
        ),
        Row(
            f"{label}: run finished p50 / p99",
            f"{ms(result.finished, 50)} / {ms(result.finished, 99)}",
            "ms",
            "finished_at - deadline",
        ),
    ]
    return rows, p99


async def storm(engine: AsyncEngine, template: Template) -> list[Row]:
    """STORM_FORMS node deadlines inside one second."""
    setup_began = time.perf_counter()
    clones = await clone_paused_runs(engine, template, STORM_FORMS)
    clone_seconds = time.perf_counter() - setup_began
    waiting = await waiting_count(engine)
    form_ids = [c.form_id for c in clones]
    run_ids = [c.run_id for c in clones]
    now = await db_now(engine)
    second = datetime.datetime.fromtimestamp(math.ceil(now.timestamp() + 3.0), datetime.UTC)
    deadlines = [second + datetime.timedelta(seconds=(i + 0.5) / STORM_FORMS) for i in range(STORM_FORMS)]
    await set_node_deadlines(engine, form_ids, deadlines)
    deferred = await db_now(engine)
    assert deferred < second, "setting the storm's deadlines took longer than the lead time"
    cleared = await wait_storm_handled(engine, second, (second - deferred).total_seconds() + 120)
    active = await wait_runs_finished(engine, run_ids, STORM_FINISH_CAP_SECONDS)
    result = await outcome(engine, form_ids)
    async with engine.connect() as conn:
        finished_at = await conn.scalar(
            text(
                "SELECT extract(epoch FROM max(finished_at) - :second) FROM workflow_runs WHERE id = ANY(:ids)"
            ),
            {"ids": run_ids, "second": second},
        )
        resume_jobs = await conn.scalar(
            text(
                "SELECT count(*) FROM procrastinate_jobs j WHERE task_name IN "
                "('resume_workflow_runs', 'advance_workflow_run') AND EXISTS (SELECT 1 FROM procrastinate_events e "
                "WHERE e.job_id = j.id AND e.type = 'deferred' AND e.at >= :second)"
            ),
            {"second": second - datetime.timedelta(seconds=1)},
        )
        future_jobs = await conn.scalar(
            text("SELECT count(*) FROM procrastinate_jobs WHERE status = 'todo' AND scheduled_at > now()")
        )
    finished_s = float(finished_at) if finished_at is not None and not active else float("nan")
    verdict = "MET" if finished_s <= TARGET_STORM_FINISHED_S else "MISSED"
    return [
        Row(
            "storm: setup",
            round(clone_seconds, 1),
            "s",
            f"{STORM_FORMS} paused runs cloned; {waiting} waiting",
        ),
        Row(
            "storm: forms timed out",
            len(result.handled),
            f"/ {STORM_FORMS}",
            f"statuses {sorted(result.statuses)}; runs {sorted(result.run_statuses)};"
            f" {len(result.resumed)} went on to `late`",
        ),
        Row(
            "storm: all handled (committed)",
            round(cleared, 2) if cleared is not None else float("nan"),
            "s",
            "after the deadline second",
        ),
        Row(
            "storm: lateness p50 / p99 / max",
            f"{ms(result.handled, 50)} / {ms(result.handled, 99)} / {ms(result.handled, 100)}",
            "ms",
            "resolved_at - deadline",
        ),
        Row("storm: resume jobs", int(resume_jobs or 0), "jobs", "batches of up to 50 runs each"),
        Row(
            "storm: every run resumed and finished",
            round(finished_s, 2),
            "s",
            f"max(finished_at) - deadline second; target <= {TARGET_STORM_FINISHED_S:.0f} s: {verdict}"
            + (f"; {active} runs still active after {STORM_FINISH_CAP_SECONDS:.0f} s" if active else ""),
        ),
        Row(
            "storm: future-scheduled todo jobs",
            int(future_jobs or 0),
            "jobs",
            "what every job fetch walks past",
        ),
    ]


async def measure(procs: TimeoutProcesses) -> list[Row]:
    engine = create_async_engine(urls.asyncpg(procs.database_url), pool_size=4)
    rows: list[Row] = []
    try:
        template_run = await paused_template_run(procs.base_url)
        template = await make_template(engine, template_run, SECRET_KEY)
        took = await fill(engine, template, WAITING)
        rows.append(Row("setup: 10,000 waiting forms", round(took, 1), "s", "cloned in SQL, one transaction"))
        fetch_10k = await fetch_cost_ms(engine)
        rows.append(Row("10k waiting: job fetch, nothing due (p50)", round(fetch_10k, 3), "ms"))
        light, p99_10k = await light_load(engine, template, "10k waiting, light load")
        rows += light
        rows += await storm(engine, template)
        took = await fill(engine, template, MANY_WAITING)
        rows.append(Row("setup: 100,000 waiting forms", round(took, 1), "s", "cloned in SQL"))
        fetch_100k = await fetch_cost_ms(engine)
        rows.append(
            Row(
                "100k waiting: job fetch, nothing due (p50)",
                round(fetch_100k, 3),
                "ms",
                f"{fetch_100k / fetch_10k:.2f}x the 10k figure (target <= 1.5x)",
            )
        )
        light, p99_100k = await light_load(engine, template, "100k waiting, light load")
        rows += light
        rows.append(
            Row(
                "100k vs 10k: light-load lateness p99",
                f"{p99_100k / p99_10k:.2f}x" if p99_10k > 0 else "n/a",
                "",
                "target <= 1.5x (or both within the 100 ms target)",
            )
        )
        rows.append(
            Row(
                "Dify sweep (reference)",
                "<= 100 / min",
                "forms",
                "up to 60 s late; a 10,000-form storm takes ~100 min",
            )
        )
    finally:
        await engine.dispose()
    return rows


def main(args: list[str]) -> dict[str, Any]:
    rows = run_with_processes(measure, TimeoutProcesses)
    report(
        "timeouts",
        rows,
        {
            "waiting_forms": [WAITING, MANY_WAITING],
            "light_load": {"forms": IDLE_FORMS, "seconds": IDLE_SECONDS},
            "storm_forms": STORM_FORMS,
            "worker_settings": "defaults",
        },
    )
    return {"rows": rows}
