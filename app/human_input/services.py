"""Resolving forms exactly once: by a submission, by the node deadline, or by the global deadline.

Every outcome is a compare-and-set on the form row (``status = 'waiting'``), in the transaction that also
records what follows from it (the resume job, or the stopped run) — DESIGN.md rules 1 and 2:

* submit: ``UPDATE ... SET status = 'submitted' WHERE id = :id AND status = 'waiting' AND <no deadline passed>``
  (deadlines compared with ``clock_timestamp()``, the time of the statement, not of the transaction's start).
  A deadline that has passed wins even before the alarm rings, so a submission landing after the deadline is
  refused (412) and the deadline's outcome is the only one.
* deadlines: the alarm job (or the sweep) locks the runs of due forms and then the forms, and decides with the
  database clock: global deadline passed -> ``expired`` and the run stops; else node deadline passed ->
  ``timeout`` and the run resumes along ``__timeout``. A concurrent submit of the same form waits for the lock
  and then finds the form no longer ``waiting``, or it got there first and the deadline handler does.

Lock order, everywhere: the run row first, then its forms (a stop does the same), so a submit, a deadline batch
and a stop can never deadlock on each other.
"""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Mapping
from typing import Any

from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.clock import utcnow
from app.errors import NotFound, SluiceError
from app.human_input.alarm import ensure_alarm, next_deadline
from app.human_input.forms import FormStatus, find_by_token
from app.workflows.engine.nodes.human_input import TIMEOUT_HANDLE, fill_outputs
from app.workflows.runs import store, transitions
from app.workflows.runs.pauses import Extensions
from app.workflows.runs.store import ACTIVE, Event, Write
from db.models import HumanInputForm

MAX_VALUE_LENGTH = 100_000
#: Forms handled per transaction by the alarm and the sweep.
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
    if form.status == FormStatus.SUBMITTED:
        raise FormSubmitted()
    if form.status in (FormStatus.TIMEOUT, FormStatus.EXPIRED):
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


def deadline_passed(form: HumanInputForm, now: datetime.datetime) -> bool:
    return form.global_expiration_time <= now or (
        form.expiration_time is not None and form.expiration_time <= now
    )


async def get_form(session: AsyncSession, token: str, app_id: uuid.UUID | None = None) -> HumanInputForm:
    form, _ = await find_by_token(session, token)
    if app_id is not None and form.app_id != app_id:
        raise NotFound("Form not found.")
    _check_status(form)
    if deadline_passed(form, utcnow()):
        raise FormExpired()
    return form


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
    await store.lock_runs(session, [form.run_id])  # the run row first (see the lock order above)
    # The compare-and-set: waiting, and no deadline passed by the database's clock.
    won = await session.execute(
        update(HumanInputForm)
        .where(
            HumanInputForm.id == form.id,
            HumanInputForm.status == FormStatus.WAITING,
            HumanInputForm.deadline > func.clock_timestamp(),
        )
        .values(
            status=FormStatus.SUBMITTED,
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
    rendered = fill_outputs(form.form_content, values)
    filled = Event(
        "human_input_form_filled",
        {
            "form_id": str(form.id),
            "node_id": form.node_id,
            "node_title": form.node_title,
            "action_id": action,
            "rendered_content": rendered,
        },
    )
    await store.apply(session, [Write(run_id=form.run_id, expected=ACTIVE, events=[filled])])
    outputs = {**values, "__action_id": action, "__rendered_content": rendered}
    await transitions.resolve(session, [(form.run_id, form.node_id, outputs, action)])
    return form


# --- deadlines ------------------------------------------------------------------------------------


#: The waiting forms whose deadline passed, earliest first. The clock is read once (an InitPlan): compared with
#: ``clock_timestamp()`` itself, a volatile function, the deadline index could only filter, walking every waiting
#: form (24 ms at 100,000) to find the few that are due.
DUE_FORMS = text(
    "SELECT run_id FROM human_input_forms WHERE status = 'waiting' AND deadline <= (SELECT clock_timestamp()) "
    "ORDER BY deadline LIMIT :limit"
)


async def handle_deadlines(session: AsyncSession, extensions: Extensions, limit: int = BATCH) -> int:
    """Apply the passed deadlines of up to ``limit`` waiting forms (earliest first); the number handled.

    Runs are locked first, in id order, with SKIP LOCKED: concurrent alarms and sweeps share the work instead of
    waiting on each other, and a run being submitted to or stopped right now is left to that transaction (the
    next pass sees what it decided). Then the forms of the locked runs are locked and checked again.
    """
    candidates = await session.execute(DUE_FORMS, {"limit": limit})
    run_ids = sorted({row[0] for row in candidates})
    if not run_ids:
        return 0
    locked = [
        row[0]
        for row in await session.execute(
            text("SELECT id FROM workflow_runs WHERE id = ANY(:ids) ORDER BY id FOR UPDATE SKIP LOCKED"),
            {"ids": run_ids},
        )
    ]
    if not locked:
        return 0
    # One read of the rows and of the clock for the whole batch (the rows are locked: nobody else can change
    # them meanwhile); a deadline that passes during the batch is the next pass's.
    now = await session.scalar(select(func.clock_timestamp()))
    assert now is not None
    forms = (
        (
            await session.execute(
                select(HumanInputForm)
                .where(
                    HumanInputForm.run_id.in_(locked),
                    HumanInputForm.status == FormStatus.WAITING,
                    HumanInputForm.deadline <= now,
                )
                .order_by(HumanInputForm.deadline)
                .with_for_update()
            )
        )
        .scalars()
        .all()
    )
    expired = {f.run_id: f for f in forms if f.global_expiration_time <= now}  # global wins: the run stops
    timed_out = [f for f in forms if f.run_id not in expired]
    for form in expired.values():
        await _expire_run(session, extensions, form, now)
    await _time_out(session, timed_out, now)
    return len(expired) + len(timed_out)


async def handle_due(session: AsyncSession, extensions: Extensions, limit: int = BATCH) -> int:
    """One pass of the alarm or the sweep: a batch of due deadlines, then the alarm set for the next one."""
    handled = await handle_deadlines(session, extensions, limit)
    await ensure_alarm(session, await next_deadline(session))
    return handled


async def _time_out(session: AsyncSession, forms: list[HumanInputForm], now: datetime.datetime) -> None:
    """Node deadlines: the forms ``timeout``, ``human_input_form_timeout`` on each run, and each paused node
    resolved along ``__timeout`` — set-based, a handful of statements per batch (the runs are locked)."""
    if not forms:
        return
    await session.execute(
        update(HumanInputForm)
        .where(HumanInputForm.id.in_([f.id for f in forms]))
        .values(status=FormStatus.TIMEOUT, resolved_at=now)
        .execution_options(synchronize_session=False)
    )
    per_run: dict[uuid.UUID, list[Event]] = {}
    for form in forms:
        per_run.setdefault(form.run_id, []).append(
            Event(
                "human_input_form_timeout",
                {"form_id": str(form.id), "node_id": form.node_id, "node_title": form.node_title},
            )
        )
    await store.apply(
        session, [Write(run_id=r, expected=ACTIVE, events=events) for r, events in sorted(per_run.items())]
    )
    await transitions.resolve(
        session, [(f.run_id, f.node_id, {"__action_id": ""}, TIMEOUT_HANDLE) for f in forms]
    )


async def _expire_run(
    session: AsyncSession, extensions: Extensions, form: HumanInputForm, now: datetime.datetime
) -> None:
    """Global deadline: the run stops; its pauses close, so every waiting form of it expires (``close``)."""
    error = f'Human input node "{form.node_title}" ({form.node_id}) expired: the global timeout passed.'
    await transitions.stop(session, extensions, [form.run_id], error, now)


async def expire_forms(session: AsyncSession, run_ids: list[uuid.UUID], now: datetime.datetime) -> None:
    """Every waiting form of the runs ``expired`` (the runs stopped; called by the pause kind's ``close``)."""
    if run_ids:
        await session.execute(
            update(HumanInputForm)
            .where(HumanInputForm.run_id.in_(run_ids), HumanInputForm.status == FormStatus.WAITING)
            .values(status=FormStatus.EXPIRED, resolved_at=now)
            .execution_options(synchronize_session=False)
        )
