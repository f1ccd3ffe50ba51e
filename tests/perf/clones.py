"""Thousands of paused human-input runs in seconds: clones of one real paused run, made in SQL.

A clone is the template run with fresh ids everywhere ids are keys or references: the run (and the run id inside
its ``state`` snapshot and its events), every node execution (the paused node's ``execution_id`` is also in
the snapshot, the pause and the form), the form, its webapp delivery and recipient (a fresh nonce, and the
SHA-256 of the token made from it with the service's key, as ``create_form`` stores it), and the run's stored
values. The deadline alarm is set for the earliest new deadline, as ``create_form`` sets it. Everything is one
transaction: ``INSERT ... SELECT`` from the template rows joined to a temporary table of fresh ids.
"""

from __future__ import annotations

import datetime
import uuid

import msgspec
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from app.human_input import tokens
from app.human_input.alarm import ensure_alarm
from app.settings import Settings


class Template(msgspec.Struct, frozen=True):
    run_id: uuid.UUID
    form_id: uuid.UUID
    token: str
    execution_ids: list[uuid.UUID]
    secret_key: str
    global_timeout_seconds: int


class Clone(msgspec.Struct, frozen=True):
    run_id: uuid.UUID
    form_id: uuid.UUID


async def make_template(
    engine: AsyncEngine, run_id: uuid.UUID, secret_key: str, settings: Settings | None = None
) -> Template:
    """The paused run to clone: it must have exactly one waiting form with one webapp recipient."""
    async with engine.connect() as conn:
        form_id, nonce = (
            await conn.execute(
                text(
                    """
                    SELECT f.id, r.nonce FROM human_input_forms f
                    JOIN human_input_recipients r ON r.form_id = f.id
                    WHERE f.run_id = :run AND f.status = 'waiting'
                    """
                ),
                {"run": run_id},
            )
        ).one()
        deliveries = await conn.scalar(
            text("SELECT count(*) FROM human_input_deliveries WHERE form_id = :form"), {"form": form_id}
        )
        assert deliveries == 1, "the template form must have exactly one delivery"
        executions = [
            r[0]
            for r in await conn.execute(
                text("SELECT id FROM workflow_node_executions WHERE run_id = :run ORDER BY index"),
                {"run": run_id},
            )
        ]
    return Template(
        run_id=run_id,
        form_id=form_id,
        token=tokens.make_token(secret_key, bytes(nonce)),
        execution_ids=executions,
        secret_key=secret_key,
        global_timeout_seconds=(settings or Settings()).human_input_global_timeout_seconds,
    )


async def _columns(conn: AsyncConnection, table: str) -> list[str]:
    rows = await conn.execute(
        text(
            """
            SELECT column_name FROM information_schema.columns
            WHERE table_schema = current_schema() AND table_name = :table AND is_generated = 'NEVER'
            ORDER BY ordinal_position
            """
        ),
        {"table": table},
    )
    return [r[0] for r in rows]


async def _clone_table(
    conn: AsyncConnection, table: str, source_where: str, overrides: dict[str, str], params: dict[str, object]
) -> None:
    """``INSERT INTO table SELECT`` one row per clone and per matching template row, ``overrides`` applied."""
    columns = await _columns(conn, table)
    unknown = set(overrides) - set(columns)
    assert not unknown, f"{table} has no columns {unknown}"
    targets = ", ".join(f'"{c}"' for c in columns)
    values = ", ".join(overrides.get(c, f'src."{c}"') for c in columns)
    # Table and column names come from this module and the catalog; values are bound parameters.
    sql = f"INSERT INTO {table} ({targets}) SELECT {values} FROM bench_clones c CROSS JOIN {table} src WHERE {source_where}"
    await conn.execute(text(sql), params)


async def clone_paused_runs(
    engine: AsyncEngine, template: Template, count: int, analyze: bool = True
) -> list[Clone]:
    """``count`` new paused runs like ``template``, each with a waiting form (no node deadline), the deadline
    alarm set for them. ``analyze`` refreshes the planner's statistics afterwards, as autovacuum would soon do."""
    k = len(template.execution_ids)
    run_ids = [uuid.uuid4() for _ in range(count)]
    form_ids = [uuid.uuid4() for _ in range(count)]
    nonces = [tokens.new_nonce() for _ in range(count)]
    webapp_tokens = [tokens.make_token(template.secret_key, n) for n in nonces]
    executions = [[uuid.uuid4() for _ in range(count)] for _ in range(k)]
    exec_columns = [f"exec_{j}" for j in range(k)]

    def replaced(column: str) -> str:
        """The column's text with the template's ids (and token) swapped for the clone's."""
        expression = f"CAST(src.{column} AS text)"
        swaps = [(":old_run", "CAST(c.run_id AS text)"), (":old_form", "CAST(c.form_id AS text)")]
        swaps += [(f":old_exec_{j}", f"CAST(c.exec_{j} AS text)") for j in range(k)]
        swaps.append((":old_token", "c.token"))
        for old, new in swaps:
            expression = f"replace({expression}, {old}, {new})"
        return f"CAST({expression} AS jsonb)"

    params: dict[str, object] = {
        "template_run": template.run_id,
        "template_form": template.form_id,
        "old_run": str(template.run_id),
        "old_form": str(template.form_id),
        "old_token": template.token,
        "global_timeout": datetime.timedelta(seconds=template.global_timeout_seconds),
        **{f"old_exec_{j}": str(e) for j, e in enumerate(template.execution_ids)},
    }
    exec_of = (
        "CASE src.id "
        + " ".join(f"WHEN CAST(:old_exec_{j} AS uuid) THEN c.exec_{j}" for j in range(k))
        + " END"
    )
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "CREATE TEMP TABLE bench_clones (run_id uuid, form_id uuid, delivery_id uuid, recipient_id uuid,"
                " nonce bytea, token text, token_hash bytea, global_deadline timestamptz"
                + "".join(f", {c} uuid" for c in exec_columns)
                + ") ON COMMIT DROP"
            )
        )
        await conn.execute(
            text(
                "INSERT INTO bench_clones (run_id, form_id, delivery_id, recipient_id, nonce, token, token_hash"
                + "".join(f", {c}" for c in exec_columns)
                + ") SELECT * FROM unnest(CAST(:runs AS uuid[]), CAST(:forms AS uuid[]), CAST(:deliveries AS uuid[]),"
                " CAST(:recipients AS uuid[]), CAST(:nonces AS bytea[]), CAST(:tokens AS text[]),"
                " CAST(:hashes AS bytea[])" + "".join(f", CAST(:{c} AS uuid[])" for c in exec_columns) + ")"
            ),
            {
                "runs": run_ids,
                "forms": form_ids,
                "deliveries": [uuid.uuid4() for _ in range(count)],
                "recipients": [uuid.uuid4() for _ in range(count)],
                "nonces": nonces,
                "tokens": webapp_tokens,
                "hashes": [tokens.token_hash(t) for t in webapp_tokens],
                **dict(zip(exec_columns, executions, strict=True)),
            },
        )
        await conn.execute(text("UPDATE bench_clones SET global_deadline = now() + :global_timeout"), params)
        stamps = {"created_at": "now()", "updated_at": "now()"}
        await _clone_table(
            conn,
            "workflow_runs",
            "src.id = :template_run",
            {"id": "c.run_id", "state": replaced("state"), "paused_at": "now()", **stamps},
            params,
        )
        await _clone_table(
            conn,
            "workflow_node_executions",
            "src.run_id = :template_run",
            {"id": exec_of, "run_id": "c.run_id", **stamps},
            params,
        )
        await _clone_table(
            conn,
            "workflow_run_events",
            "src.run_id = :template_run",
            {"run_id": "c.run_id", "data": replaced("data"), "created_at": "now()"},
            params,
        )
        await _clone_table(
            conn,
            "workflow_pauses",
            "src.run_id = :template_run",
            {
                "run_id": "c.run_id",
                "execution_id": exec_of.replace("src.id", "src.execution_id"),
                "created_at": "now()",
            },
            params,
        )
        await _clone_table(
            conn,
            "human_input_forms",
            "src.id = :template_form",
            {
                "id": "c.form_id",
                "run_id": "c.run_id",
                "execution_id": exec_of.replace("src.id", "src.execution_id"),
                "global_expiration_time": "c.global_deadline",
                **stamps,
            },
            params,
        )
        await _clone_table(
            conn,
            "human_input_deliveries",
            "src.form_id = :template_form",
            {"id": "c.delivery_id", "form_id": "c.form_id", **stamps},
            params,
        )
        await _clone_table(
            conn,
            "human_input_recipients",
            "src.form_id = :template_form",
            {
                "id": "c.recipient_id",
                "form_id": "c.form_id",
                "delivery_id": "c.delivery_id",
                "nonce": "c.nonce",
                "token_hash": "c.token_hash",
                **stamps,
            },
            params,
        )
        await _clone_table(
            conn, "workflow_run_values", "src.run_id = :template_run", {"run_id": "c.run_id"}, params
        )
        await ensure_alarm(
            AsyncSession(bind=conn), await conn.scalar(text("SELECT min(global_deadline) FROM bench_clones"))
        )
    if analyze:
        async with engine.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            for table in (
                "workflow_runs",
                "workflow_node_executions",
                "workflow_run_events",
                "workflow_pauses",
                "human_input_forms",
                "human_input_deliveries",
                "human_input_recipients",
                "procrastinate_jobs",
            ):
                await conn.execute(text(f"ANALYZE {table}"))
    return [Clone(run_id=r, form_id=f) for r, f in zip(run_ids, form_ids, strict=True)]
