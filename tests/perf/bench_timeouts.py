"""`just bench timeouts`: how late human-input node deadlines are applied, by the real worker process.

Setup is real but fast: ONE paused run is made through the API and the worker (start -> human-input without a
node timeout -> `done` on `approve`, `late` on `__timeout`), then cloned in SQL (see ``tests/perf/clones.py``)
into thousands of paused runs with their forms, pauses, node executions, events and recipients, each form with
its global timer job deferred as ``create_form`` defers it. Node deadlines are then set on chosen forms and
their timer jobs deferred with ``db.queue.defer_jobs``, again exactly as ``create_form`` does. From there on
everything is the real path in the worker process: timer job -> ``handle_deadlines`` -> ``resolve_pause`` ->
resume job -> engine (the benchmark only reads the database). After each cloning the planner's statistics are
refreshed (ANALYZE), as autovacuum would soon do on a database that holds this many rows.

1. Spread: 10,000 waiting forms, 1,000 of them with node deadlines spread uniformly over the next 10 s.
   Lateness = ``human_input_forms.resolved_at`` (database clock, taken when the form is handled) - deadline;
   "committed" is when the benchmark first saw the form no longer waiting (polling every 50 ms);
   resume = ``created_at`` of the ``node_started`` event of ``late`` (the node after ``__timeout``) - deadline.
   Default worker settings (poll 0.5 s). At this rate the worker never idles (the resumes keep it busy), so
   it fetches the next due timer without waiting for a poll. Hence also "idle": 100 deadlines over 5 s,
   once with the default poll interval and once with ``SLUICE_WORKER_POLL_SECONDS=0.05``: a scheduled job
   becoming due sends no NOTIFY, so an idle worker starts it up to one poll interval late.
2. Storm: 10,000 more forms whose node deadlines all fall in the same second, default worker settings:
   time from that second until all are handled (committed) and until every run has resumed and finished.
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

from db import queue, urls
from tests.perf.clones import Template, clone_paused_runs, make_template, record_timers
from tests.perf.harness import Processes, Row, percentile, report, run_with_processes

SECRET_KEY = "bench-timeouts-secret-key"
WAITING = 10_000
SPREAD_FORMS = 1_000
SPREAD_SECONDS = 10.0
#: A light load, where the worker sits idle between deadlines and its poll interval shows.
IDLE_FORMS = 100
IDLE_SECONDS = 5.0
SPREAD_LEAD_SECONDS = 0.5
STORM_FORMS = 10_000
FAST_POLL_SECONDS = 0.05
OBSERVE_INTERVAL = 0.05
#: Give up waiting for storm runs to finish after this long (the table then says how many did).
STORM_FINISH_CAP_SECONDS = 200.0
TARGET_P99_LATENESS_S = 1.0
TARGET_STORM_CLEARED_S = 30.0

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
) -> list[int]:
    """What ``create_form`` does for a node timeout: the form's ``expiration_time`` and its timer job."""
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
        job_ids = await queue.defer_jobs(
            session,
            [
                queue.JobSpec(
                    task=queue.Task.EXPIRE_HUMAN_INPUT_FORM, args={"form_id": str(i)}, schedule_at=deadline
                )
                for i, deadline in zip(form_ids, deadlines, strict=True)
            ],
        )
        await record_timers(session, list(form_ids), job_ids)
        return job_ids


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
    """Per form: lateness of handling, of the resumed node's start and of the run's end; timer job start."""

    def __init__(self, rows: list[Any]) -> None:
        self.handled = [r.handled for r in rows if r.handled is not None]
        self.resumed = [r.resumed for r in rows if r.resumed is not None]
        self.finished = [r.finished for r in rows if r.finished is not None]
        self.timer_started = [r.timer_started for r in rows if r.timer_started is not None]
        self.statuses = {r.status for r in rows}
        self.run_statuses = {r.run_status for r in rows}


async def outcome(engine: AsyncEngine, form_ids: list[uuid.UUID], timer_jobs: list[int]) -> Outcome:
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
                           extract(epoch FROM r.finished_at - f.expiration_time) AS finished,
                           extract(epoch FROM (
                               SELECT min(ev.at) FROM procrastinate_jobs j
                               JOIN procrastinate_events ev ON ev.job_id = j.id AND ev.type = 'started'
                               WHERE j.id = ANY(:jobs) AND j.args->>'form_id' = f.id::text
                           ) - f.expiration_time) AS timer_started
                    FROM human_input_forms f JOIN workflow_runs r ON r.id = f.run_id
                    WHERE f.id = ANY(:ids)
                    """
                ),
                {"ids": form_ids, "jobs": timer_jobs},
            )
        ).all()
    return Outcome(list(rows))


async def handling_transactions(engine: AsyncEngine, run_ids: list[uuid.UUID]) -> tuple[int, int]:
    """(transactions that handled these forms, most forms in one): ``human_input_form_timeout`` events carry
    their transaction's start time (``now()``), so forms handled together share it."""
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                text(
                    """
                    SELECT count(*), coalesce(max(n), 0) FROM (
                        SELECT created_at, count(*) AS n FROM workflow_run_events
                        WHERE run_id = ANY(:ids) AND event = 'human_input_form_timeout'
                        GROUP BY created_at
                    ) t
                    """
                ),
                {"ids": run_ids},
            )
        ).one()
    return int(row[0]), int(row[1])


def ms(values: list[float], q: float) -> float:
    return round(percentile(values, q) * 1000, 1)


async def spread(
    engine: AsyncEngine, template: Template, label: str, forms: int, seconds: float
) -> list[Row]:
    """Scenario 1: ``forms`` node deadlines spread uniformly over ``seconds`` among WAITING waiting forms."""
    missing = WAITING - await waiting_count(engine)
    if missing > 0:
        await clone_paused_runs(engine, template, missing)
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
                {"template": template.run_id, "n": forms},
            )
        ).all()
    form_ids = [r[0] for r in chosen]
    run_ids = [r[1] for r in chosen]
    first = await db_now(engine) + datetime.timedelta(seconds=SPREAD_LEAD_SECONDS)
    step = seconds / forms
    deadlines = [first + datetime.timedelta(seconds=(i + 0.5) * step) for i in range(forms)]
    jobs = await set_node_deadlines(engine, form_ids, deadlines)
    observer = Observer(engine, form_ids)
    all_seen = await observer.run(SPREAD_LEAD_SECONDS + seconds + 60)
    active = await wait_runs_finished(engine, run_ids, 60)
    result = await outcome(engine, form_ids, jobs)
    by_id = dict(zip(form_ids, deadlines, strict=True))
    committed = [(seen - by_id[i]).total_seconds() for i, seen in observer.seen.items()]
    transactions, largest = await handling_transactions(engine, run_ids)
    p99 = percentile(result.handled, 99)
    verdict = "MET" if p99 < TARGET_P99_LATENESS_S else "MISSED"
    return [
        Row(
            f"{label}: forms timed out",
            len(result.handled),
            f"/ {forms}",
            f"statuses {sorted(result.statuses)}; runs {sorted(result.run_statuses)};"
            f" {len(result.resumed)} went on to `late`"
            + ("" if all_seen and not active else f"; {active} runs still active"),
        ),
        Row(
            f"{label}: lateness p50 / p99 / max",
            f"{ms(result.handled, 50)} / {ms(result.handled, 99)} / {ms(result.handled, 100)}",
            "ms",
            f"resolved_at - deadline; target p99 < 1000 (aim 100): {verdict}",
        ),
        Row(
            f"{label}: timer job start p50 / p99 / max",
            f"{ms(result.timer_started, 50)} / {ms(result.timer_started, 99)} / {ms(result.timer_started, 100)}",
            "ms",
            "procrastinate 'started' - deadline (poll wait)",
        ),
        Row(
            f"{label}: committed p50 / p99 / max",
            f"{ms(committed, 50)} / {ms(committed, 99)} / {ms(committed, 100)}",
            "ms",
            f"first seen not waiting - deadline (polled every {OBSERVE_INTERVAL * 1000:.0f} ms)",
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
        Row(
            f"{label}: handling transactions",
            transactions,
            "txns",
            f"at most {largest} forms in one",
        ),
    ]


async def storm(engine: AsyncEngine, template: Template) -> list[Row]:
    """Scenario 2: STORM_FORMS node deadlines inside one second."""
    setup_began = time.perf_counter()
    clones = await clone_paused_runs(engine, template, STORM_FORMS)
    clone_seconds = time.perf_counter() - setup_began
    waiting = await waiting_count(engine)
    form_ids = [c.form_id for c in clones]
    run_ids = [c.run_id for c in clones]
    now = await db_now(engine)
    second = datetime.datetime.fromtimestamp(math.ceil(now.timestamp() + 3.0), datetime.UTC)
    deadlines = [second + datetime.timedelta(seconds=(i + 0.5) / STORM_FORMS) for i in range(STORM_FORMS)]
    jobs = await set_node_deadlines(engine, form_ids, deadlines)
    deferred = await db_now(engine)
    assert deferred < second, "setting the storm's deadlines took longer than the lead time"
    cleared = await wait_storm_handled(engine, second, (second - deferred).total_seconds() + 120)
    active = await wait_runs_finished(engine, run_ids, STORM_FINISH_CAP_SECONDS)
    result = await outcome(engine, form_ids, jobs)
    transactions, largest = await handling_transactions(engine, run_ids)
    async with engine.connect() as conn:
        timers_done = await conn.scalar(
            text(
                """
                SELECT extract(epoch FROM max(ev.at) - :second) FROM procrastinate_events ev
                WHERE ev.job_id = ANY(:jobs) AND ev.type IN ('succeeded', 'failed')
                """
            ),
            {"jobs": jobs, "second": second},
        )
        finished_at = await conn.scalar(
            text(
                "SELECT extract(epoch FROM max(finished_at) - :second) FROM workflow_runs WHERE id = ANY(:ids)"
            ),
            {"ids": run_ids, "second": second},
        )
        resume_span = (
            await conn.execute(
                text(
                    """
                    SELECT count(*), extract(epoch FROM max(r.finished_at) - min(e.created_at))
                    FROM workflow_runs r JOIN workflow_run_events e ON e.run_id = r.id
                    WHERE r.id = ANY(:ids) AND e.event = 'workflow_started' AND e.data->>'reason' = 'resumption'
                      AND r.finished_at IS NOT NULL
                    """
                ),
                {"ids": run_ids},
            )
        ).one()
        future_jobs = await conn.scalar(
            text("SELECT count(*) FROM procrastinate_jobs WHERE status = 'todo' AND scheduled_at > now()")
        )
        resolved_at = await conn.scalar(
            text(
                "SELECT extract(epoch FROM max(resolved_at) - :second) FROM human_input_forms WHERE id = ANY(:ids)"
            ),
            {"ids": form_ids, "second": second},
        )
    cleared_s = cleared if cleared is not None else float("nan")
    verdict = "MET" if cleared is not None and cleared < TARGET_STORM_CLEARED_S else "MISSED"
    finished_note = (
        "all finished"
        if not active
        else f"{STORM_FORMS - active} of {STORM_FORMS} finished within the {STORM_FINISH_CAP_SECONDS:.0f} s cap"
    )
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
            round(cleared_s, 2),
            "s",
            f"after the deadline second; target < {TARGET_STORM_CLEARED_S:.0f} s: {verdict}",
        ),
        Row(
            "storm: all handled (resolved_at)",
            round(float(resolved_at), 2) if resolved_at is not None else float("nan"),
            "s",
            "max(resolved_at) - deadline second (database clock, before commit)",
        ),
        Row(
            "storm: lateness p50 / p99 / max",
            f"{ms(result.handled, 50)} / {ms(result.handled, 99)} / {ms(result.handled, 100)}",
            "ms",
            "resolved_at - deadline",
        ),
        Row(
            "storm: handling transactions",
            transactions,
            "txns",
            f"at most {largest} forms in one (handle_deadlines BATCH = 500)",
        ),
        Row(
            "storm: all timer jobs done",
            round(float(timers_done), 2) if timers_done is not None else float("nan"),
            "s",
            f"{len(jobs)} node timer jobs, most of them finding their form already handled",
        ),
        Row(
            "storm: resume throughput",
            round(resume_span[0] / float(resume_span[1]), 1) if resume_span[1] else float("nan"),
            "runs/s",
            "finished runs / (last finished - first resumption started)",
        ),
        Row(
            "storm: future-scheduled todo jobs",
            int(future_jobs or 0),
            "jobs",
            "global timers (7 days out) that every job fetch scans past",
        ),
        Row(
            "storm: resumed node started p50 / p99",
            f"{percentile(result.resumed, 50):.1f} / {percentile(result.resumed, 99):.1f}",
            "s",
            "node_started of `late` - deadline",
        ),
        Row(
            "storm: every run resumed and finished",
            round(float(finished_at), 2) if finished_at is not None and not active else float("nan"),
            "s",
            f"max(finished_at) - deadline second; {finished_note}",
        ),
    ]


async def measure(procs: TimeoutProcesses) -> list[Row]:
    engine = create_async_engine(urls.asyncpg(procs.database_url), pool_size=4)
    rows: list[Row] = []
    try:
        template_run = await paused_template_run(procs.base_url)
        template = await make_template(engine, template_run, SECRET_KEY)
        began = time.perf_counter()
        await clone_paused_runs(engine, template, WAITING - 1)
        rows.append(
            Row(
                "setup: paused runs cloned",
                round(time.perf_counter() - began, 1),
                "s",
                f"{WAITING - 1} runs + forms + global timer jobs, one transaction",
            )
        )
        rows += await spread(engine, template, "spread, poll 0.5 s", SPREAD_FORMS, SPREAD_SECONDS)
        rows += await spread(engine, template, "idle, poll 0.5 s", IDLE_FORMS, IDLE_SECONDS)
        procs.stop_worker("worker")
        procs.start_worker("worker-fast-poll", SLUICE_WORKER_POLL_SECONDS=str(FAST_POLL_SECONDS))
        await asyncio.sleep(2)
        rows += await spread(engine, template, f"idle, poll {FAST_POLL_SECONDS} s", IDLE_FORMS, IDLE_SECONDS)
        procs.stop_worker("worker-fast-poll")
        procs.start_worker("worker-storm")
        await asyncio.sleep(2)
        rows += await storm(engine, template)
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
            "waiting_forms": WAITING,
            "spread_forms": SPREAD_FORMS,
            "spread_seconds": SPREAD_SECONDS,
            "idle_forms": IDLE_FORMS,
            "idle_seconds": IDLE_SECONDS,
            "storm_forms": STORM_FORMS,
            "worker_poll_seconds": {"spread": 0.5, "idle": [0.5, FAST_POLL_SECONDS], "storm": 0.5},
        },
    )
    return {"rows": rows}
