"""Liveness and readiness probes."""

from __future__ import annotations

import msgspec
import structlog
from litestar import Controller, Response, get
from litestar.openapi.datastructures import ResponseSpec
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.settings import Settings
from app.state import SluiceState
from db import migrate

log = structlog.get_logger()

#: A worker counts as alive when its last heartbeat (procrastinate beats every 10 s) is this recent.
WORKER_HEARTBEAT_WINDOW_SECONDS = 30


class Liveness(msgspec.Struct):
    status: str


class Check(msgspec.Struct):
    ok: bool
    detail: str


class Readiness(msgspec.Struct):
    ready: bool
    checks: dict[str, Check]


#: checks whose failure does not make the service unready (reported for operators)
INFORMATIONAL = ("sandbox",)


async def sandbox_check(state: SluiceState) -> Check:
    """Which confinement layers this host offers for code nodes (probed once per process, in a subprocess).
    Always ``ok``: a host that cannot confine code still serves everything else; the detail says whether code
    nodes are refused and why."""
    cached = state.get("sandbox_check")
    if cached is None:
        from app.sandbox.probe import describe, probe

        settings = state.settings
        try:
            ready, refused = await probe(settings.code_sandbox, settings.code_execution_max_workers)
        except Exception as exc:  # a probe reports, it does not raise (and is tried again next time)
            log.warning("sandbox_probe_failed", error=f"{type(exc).__name__}: {exc}")
            return Check(ok=True, detail="unknown: the sandbox probe failed (see the log)")
        cached = Check(ok=True, detail=describe(settings.code_sandbox, ready, refused))
        if ready is not None or settings.code_sandbox == "off":
            state["sandbox_check"] = cached  # the host does not change while we run
    return cached


async def readiness(
    engine: AsyncEngine, head: str | None, settings: Settings, extra: dict[str, Check] | None = None
) -> Readiness:
    """The checks, with details fit for anonymous callers: what failed, never why (that goes to the log).
    ``extra`` checks are informational (they never make the service unready)."""
    checks: dict[str, Check] = {
        "human_input": Check(ok=True, detail="forms can be created and answered")
        if settings.secret_key
        else Check(ok=False, detail="SLUICE_SECRET_KEY is not set: human-input forms cannot be created")
    }
    try:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
            checks["database"] = Check(ok=True, detail="reachable")
            current = await migrate.current_revision(conn)
            checks["migrations"] = Check(
                ok=current == head, detail=f"at {current or 'nothing'}, head is {head}"
            )
            workers = (
                await conn.scalar(
                    text(
                        "SELECT count(*) FROM procrastinate_workers "
                        "WHERE last_heartbeat > now() - make_interval(secs => :window)"
                    ),
                    {"window": WORKER_HEARTBEAT_WINDOW_SECONDS},
                )
                if current is not None
                else 0
            )
            checks["worker"] = Check(
                ok=bool(workers),
                detail=f"{workers} worker(s) beat in the last {WORKER_HEARTBEAT_WINDOW_SECONDS} s",
            )
    except Exception as exc:  # a probe reports, it does not raise
        log.warning("readiness_check_failed", error=f"{type(exc).__name__}: {exc}")
        checks.setdefault("database", Check(ok=False, detail="unreachable"))
        checks.setdefault("migrations", Check(ok=False, detail="unknown"))
        checks.setdefault("worker", Check(ok=False, detail="unknown"))
    return Readiness(ready=all(c.ok for c in checks.values()), checks={**checks, **(extra or {})})


class HealthController(Controller):
    tags = ["health"]

    @get("/healthz")
    async def healthz(self) -> Liveness:
        """The process is alive."""
        return Liveness(status="ok")

    @get(
        "/readyz",
        responses={
            503: ResponseSpec(
                data_container=Readiness, description="Not ready: a check failed", generate_examples=False
            )
        },
    )
    async def readyz(self, app_state: SluiceState, db_engine: AsyncEngine) -> Response[Readiness]:
        """Ready to serve: the database answers, migrations are at head, a worker was seen recently, and human
        input can work (a secret key is set). The ``sandbox`` entry only informs: which confinement layers this
        host offers, or why code nodes are refused."""
        sandbox = await sandbox_check(app_state)
        report = await readiness(
            db_engine, app_state.migration_head, app_state.settings, {"sandbox": sandbox}
        )
        return Response(report, status_code=200 if report.ready else 503)
