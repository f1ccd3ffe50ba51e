"""Resolving forms exactly once: by a submission, by the node deadline, or by the global deadline.

Every outcome is a compare-and-set on the form row (``status = 'waiting'``), in the transaction that also
records what follows from it (the resume job, or the stopped run) — DESIGN.md rules 1 and 2:

* submit: ``UPDATE ... SET status = 'submitted' WHERE id = :id AND status = 'waiting' AND <no deadline passed>``
  (deadlines compared with ``clock_timestamp()``, the time of the statement, not of the transaction's start).
  A deadline that has passed wins even before its timer fires, so a submission landing after the deadline is
  refused (412) and the timer's outcome is the only one.
* deadlines: the timer job (or the sweep) locks the waiting form row, and decides with the database clock:
  global deadline passed -> ``expired`` and the run stops; else node deadline passed -> ``timeout`` and the run
  resumes along ``__timeout``. The row lock orders a timer against a concurrent submit; the loser sees a
  form that is no longer ``waiting`` and changes nothing.
"""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Mapping
from typing import Any

from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import NotFound, SluiceError
from app.human_input.forms import find_by_token, utcnow
from app.workflows import run_store
from app.workflows.engine.nodes.human_input import TIMEOUT_HANDLE, fill_outputs
from app.workflows.run_store import Event
from app.workflows.services import resolve_pause, resolve_pauses, stop_run_now
from db import queue
from db.models import HumanInputForm, WorkflowRun

MAX_VALUE_LENGTH = 100_000
#: Forms handled per transaction by the sweep and by a timer that finds others due.
BATCH = 500


class FormSubmitted(SluiceError):
    """This form has already been submitted."""

    status, code = 412, "human_input_form_submitted"


class FormExpired(SluiceError):
    """This form has expired."""

    status, code = 412, "human_input_form_expired"


class InvalidFormData(SluiceError):
    """The submitted values do not fit the form."""

    status, code = 400, "invalid_form_data"


def _check_status(form: HumanInputForm) -> None:
    if form.status == "submitted":
        raise FormSubmitted()
    if form.status in ("timeout", "expired"):
        raise FormExpired()


def validate_values(form: HumanInputForm, inputs: Mapping[str, Any], action: str) -> dict[str, str]:
    actions = {a["id"] for a in form.user_actions}
    if action not in actions:
        raise InvalidFormData(f"action: must be one of {', '.join(sorted(actions))}")
    names = [i["output_variable_name"] for i in form.inputs]
    unknown = sorted(set(inputs) - set(names))
    if unknown:
        raise InvalidFormData(f"unknown inputs: {', '.join(unknown)}")
    values: dict[str, str] = {}
    for name in names:
        if name not in inputs or inputs[name] is None:
            raise InvalidFormData(f"{name}: is required")
        value = inputs[name]
        if not isinstance(value, str):
            raise InvalidFormData(f"{name}: must be a string")
        if len(value) > MAX_VALUE_LENGTH or "\x00" in value:
            raise InvalidFormData(f"{name}: must be at most {MAX_VALUE_LENGTH} characters, without NUL")
        values[name] = value
    return values


async def get_form(session: AsyncSession, token: str, app_id: uuid.UUID | None = None) -> HumanInputForm:
    form, _ = await find_by_token(session, token)
    if app_id is not None and form.app_id != app_id:
        raise NotFound("Form not found.")
    _check_status(form)
    if _deadline_passed(form, utcnow()):
        raise FormExpired()
    return form


def _deadline_passed(form: HumanInputForm, now: datetime.datetime) -> bool:
    return form.global_expiration_time <= now or (
        form.expiration_time is not None and form.expiration_time <= now
    )


async def submit(
    session: AsyncSession,
    token: str,
    inputs: Mapping[str, Any],
    action: str,
    user: str | None,
    app_id: uuid.UUID | None = None,
) -> HumanInputForm:
    form, _ = await find_by_token(session, token)
    if app_id is not None and form.app_id != app_id:
        raise NotFound("Form not found.")
    _check_status(form)
    values = validate_values(form, inputs, action)
    # The compare-and-set: waiting, and no deadline passed by the database's clock.
    won = await session.execute(
        update(HumanInputForm)
        .where(
            HumanInputForm.id == form.id,
            HumanInputForm.status == "waiting",
            HumanInputForm.global_expiration_time > func.clock_timestamp(),
            (HumanInputForm.expiration_time.is_(None))
            | (HumanInputForm.expiration_time > func.clock_timestamp()),
        )
        .values(
            status="submitted",
            submitted_values=values,
            action_id=action,
            submitted_by=user,
            resolved_at=func.now(),
        )
        .returning(HumanInputForm.id)
        .execution_options(synchronize_session=False)
    )
    if won.first() is None:
        await session.refresh(form)
        _check_status(form)
        raise FormExpired()
    await queue.cancel_jobs(session, form.timer_job_ids)
    rendered = fill_outputs(form.form_content, values)
    outputs = {**values, "__action_id": action, "__rendered_content": rendered}
    await run_store.append_events(
        session,
        form.run_id,
        [
            Event(
                "human_input_form_filled",
                {
                    "form_id": str(form.id),
                    "node_id": form.node_id,
                    "node_title": form.node_title,
                    "action_id": action,
                    "rendered_content": rendered,
                },
            )
        ],
    )
    await resolve_pause(session, form.run_id, form.node_id, outputs, action)
    return form


# --- deadlines ------------------------------------------------------------------------------------


async def handle_deadlines(
    session: AsyncSession, form_id: uuid.UUID | None = None, limit: int = BATCH
) -> int:
    """Apply every passed deadline of waiting forms: ``form_id``'s first, then up to ``limit`` others.

    Rows are taken with FOR UPDATE SKIP LOCKED, so concurrent timers and sweeps share the work instead of
    waiting on each other, and a form being submitted right now is left to that submission (its UPDATE holds
    the row; if it loses the race with the deadline it changes nothing, and the next pass handles the form).
    """
    due = text(
        """
        SELECT id FROM human_input_forms
        WHERE status = 'waiting'
          AND (global_expiration_time <= clock_timestamp() OR expiration_time <= clock_timestamp())
          AND (CAST(:form_id AS uuid) IS NULL OR id = CAST(:form_id AS uuid))
        ORDER BY least(coalesce(expiration_time, global_expiration_time), global_expiration_time)
        LIMIT :limit
        FOR UPDATE SKIP LOCKED
        """
    )
    handled = 0
    ids: list[uuid.UUID] = []
    if form_id is not None:
        ids += [r[0] for r in await session.execute(due, {"form_id": form_id, "limit": 1})]
    if limit > 0:
        ids += [
            r[0] for r in await session.execute(due, {"form_id": None, "limit": limit}) if r[0] not in ids
        ]
    if not ids:
        return 0
    # One read of the rows and of the clock for the whole batch (the rows are locked: nobody else can change
    # them meanwhile); a deadline that passes during the batch is the next pass's.
    now = await session.scalar(select(func.clock_timestamp()))
    assert now is not None
    order = {form_id: i for i, form_id in enumerate(ids)}
    batch = (await session.execute(select(HumanInputForm).where(HumanInputForm.id.in_(ids)))).scalars().all()
    stopped_runs: set[uuid.UUID] = set()
    timed_out: list[HumanInputForm] = []
    for form in sorted(batch, key=lambda f: order[f.id]):
        if form.global_expiration_time <= now:  # global wins: the run stops (rare; one form at a time)
            if form.run_id not in stopped_runs:
                await _expire_run(session, form, now)
                stopped_runs.add(form.run_id)
                handled += 1
        else:
            timed_out.append(form)
    # Forms of a run stopped above were expired with it.
    timed_out = [f for f in timed_out if f.run_id not in stopped_runs]
    await _time_out(session, timed_out, now)
    return handled + len(timed_out)


async def _time_out(session: AsyncSession, forms: list[HumanInputForm], now: datetime.datetime) -> None:
    """Node deadlines: the forms ``timeout``, their other timers cancelled, ``human_input_form_timeout`` on
    each run, and each paused node resolved along ``__timeout`` — set-based, a handful of statements per batch."""
    if not forms:
        return
    run_ids = sorted({f.run_id for f in forms})
    # Runs first, in id order: concurrent batches (and single submissions, which lock one run) never deadlock.
    await session.execute(
        select(WorkflowRun.id).where(WorkflowRun.id.in_(run_ids)).order_by(WorkflowRun.id).with_for_update()
    )
    await session.execute(
        update(HumanInputForm)
        .where(HumanInputForm.id.in_([f.id for f in forms]))
        .values(status="timeout", resolved_at=now)
        .execution_options(synchronize_session=False)
    )
    # The other deadline's timers (the one running now is not 'todo' and stays).
    await queue.cancel_jobs(session, [job_id for f in forms for job_id in f.timer_job_ids])
    await run_store.append_events_many(
        session,
        [
            (
                f.run_id,
                Event(
                    "human_input_form_timeout",
                    {"form_id": str(f.id), "node_id": f.node_id, "node_title": f.node_title},
                ),
            )
            for f in forms
        ],
    )
    await resolve_pauses(session, [(f.run_id, f.node_id, {"__action_id": ""}, TIMEOUT_HANDLE) for f in forms])


async def _expire_run(session: AsyncSession, form: HumanInputForm, now: datetime.datetime) -> None:
    """Global deadline: the form and every other waiting form of the run expire, and the run stops."""
    timers = await session.execute(
        update(HumanInputForm)
        .where(HumanInputForm.run_id == form.run_id, HumanInputForm.status == "waiting")
        .values(status="expired", resolved_at=now)
        .returning(HumanInputForm.timer_job_ids)
        .execution_options(synchronize_session=False)
    )
    await queue.cancel_jobs(session, [job_id for (ids,) in timers for job_id in ids])
    run = await session.get(WorkflowRun, form.run_id)
    assert run is not None
    error = f'Human input node "{form.node_title}" ({form.node_id}) expired: the global timeout passed.'
    await stop_run_now(session, run, now, error)
