"""Creating forms (inside the pause's transaction) and finding them by token. Services never commit."""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Mapping, Sequence
from enum import StrEnum
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.clock import utcnow
from app.errors import NotFound
from app.human_input import tokens
from app.human_input.alarm import ensure_alarm
from app.settings import Settings
from app.workflows.runs.pauses import PausedNode, PauseType
from app.workflows.runs.store import Event
from db import queue
from db.models import HumanInputDelivery, HumanInputForm, HumanInputRecipient


class FormStatus(StrEnum):
    """A human-input form's status (``human_input_forms.status``, Dify's strings)."""

    #: open: its page and the API accept a submission until a deadline passes
    WAITING = "waiting"
    SUBMITTED = "submitted"
    #: the node's deadline passed: the run resumes along ``__timeout``
    TIMEOUT = "timeout"
    #: the global deadline passed, or the run was stopped
    EXPIRED = "expired"


class DeliveryMethod(StrEnum):
    """How a form reaches people (``human_input_deliveries.method``), and the kind of its recipients."""

    #: a token for the API and the web page (every form has one)
    WEBAPP = "webapp"
    #: a link by mail to each external address
    EMAIL = "email"


def _email_targets(config: Mapping[str, Any]) -> list[str]:
    """The external addresses of an email delivery (workspace members have no address in Sluice yet)."""
    recipients = config.get("recipients") or {}
    items = recipients.get("items") or [] if isinstance(recipients, Mapping) else []
    return sorted(
        {
            str(i["email"])
            for i in items
            if isinstance(i, Mapping) and i.get("type") == "external" and i.get("email")
        }
    )


async def create_form(
    session: AsyncSession,
    settings: Settings,
    *,
    run_id: uuid.UUID,
    app_id: uuid.UUID,
    node_id: str,
    execution_id: uuid.UUID,
    request: Mapping[str, Any],
) -> list[Event]:
    """The form of a paused human-input node, its deliveries, recipients and mail jobs, and a deadline alarm
    that rings in time for it.

    Runs in the transaction that records the pause (DESIGN.md rule 1): either the run is paused with a form
    that can be answered and a deadline that will fire, or none of it happened. Returns the events to append.
    """
    now = utcnow()
    timeout = request.get("timeout_seconds")
    form = HumanInputForm(
        id=uuid.uuid4(),
        run_id=run_id,
        app_id=app_id,
        node_id=node_id,
        node_title=str(request.get("node_title") or node_id),
        execution_id=execution_id,
        status=FormStatus.WAITING,
        form_content=str(request.get("form_content") or ""),
        inputs=list(request.get("inputs") or []),
        resolved_default_values=dict(request.get("resolved_default_values") or {}),
        user_actions=list(request.get("user_actions") or []),
        expiration_time=now + datetime.timedelta(seconds=int(timeout)) if timeout else None,
        global_expiration_time=now + datetime.timedelta(seconds=settings.human_input_global_timeout_seconds),
    )
    session.add(form)
    await session.flush()  # no ORM relationships: flush parents before their children
    methods = list(request.get("delivery_methods") or [])
    if not any(m.get("type") == DeliveryMethod.WEBAPP for m in methods):
        methods.insert(
            0, {"type": DeliveryMethod.WEBAPP, "config": {}}
        )  # the API and the web page always have a token
    mail_deliveries: list[uuid.UUID] = []
    for method in methods:
        delivery = HumanInputDelivery(
            id=uuid.uuid4(), form_id=form.id, method=method["type"], config=method.get("config") or {}
        )
        session.add(delivery)
        await session.flush()
        if method["type"] == DeliveryMethod.EMAIL:
            addresses = _email_targets(delivery.config)
            for address in addresses:
                session.add(_recipient(settings, form.id, delivery.id, DeliveryMethod.EMAIL, address))
            if addresses:
                mail_deliveries.append(delivery.id)
        else:
            session.add(_recipient(settings, form.id, delivery.id, DeliveryMethod.WEBAPP, None))
    await session.flush()

    await queue.defer_jobs(
        session,
        [
            queue.JobSpec(task=queue.Task.SEND_HUMAN_INPUT_EMAIL, args={"delivery_id": str(d)})
            for d in mail_deliveries
        ],
    )
    await ensure_alarm(session, deadline(form))
    return [Event("human_input_required", required_event(form))]


def _recipient(
    settings: Settings, form_id: uuid.UUID, delivery_id: uuid.UUID, kind: DeliveryMethod, email: str | None
) -> HumanInputRecipient:
    nonce = tokens.new_nonce()
    token = tokens.make_token(settings.secret_key, nonce)
    return HumanInputRecipient(
        form_id=form_id,
        delivery_id=delivery_id,
        kind=kind,
        email=email,
        nonce=nonce,
        token_hash=tokens.token_hash(token),
    )


def required_event(form: HumanInputForm) -> dict[str, Any]:
    """The stored ``human_input_required`` event: the form id, never its token (a dump of the events table must
    not answer a form). :func:`with_form_links` adds the token and link where the event is sent."""
    return {
        "form_id": str(form.id),
        "node_id": form.node_id,
        "node_title": form.node_title,
        "form_content": form.form_content,
        "inputs": form.inputs,
        "resolved_default_values": form.resolved_default_values,
        "actions": form.user_actions,
        "expiration_time": int(deadline(form).timestamp()),
    }


def form_url(settings: Settings, token: str) -> str:
    return f"{settings.public_url}/form/{token}"


async def webapp_tokens(
    session: AsyncSession, settings: Settings, form_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, str]:
    """Each form's webapp token, rebuilt from its recipient's nonce (the API's and the web page's credential)."""
    if not form_ids:
        return {}
    rows = await session.execute(
        select(HumanInputRecipient.form_id, HumanInputRecipient.nonce)
        .where(HumanInputRecipient.form_id.in_(form_ids), HumanInputRecipient.kind == DeliveryMethod.WEBAPP)
        .order_by(HumanInputRecipient.form_id, HumanInputRecipient.created_at.desc())
    )
    # Ordered newest first per form: the dict keeps the oldest (the first webapp recipient) of each.
    return {form_id: tokens.make_token(settings.secret_key, nonce) for form_id, nonce in rows}


async def with_form_links(
    session: AsyncSession, settings: Settings, rows: Sequence[tuple[int, str, dict[str, Any]]]
) -> list[tuple[int, str, dict[str, Any]]]:
    """Event rows as sent to a client: ``human_input_required`` gets ``form_token`` and ``form_url`` back."""
    wanted = [uuid.UUID(d["form_id"]) for _, e, d in rows if e == "human_input_required" and "form_id" in d]
    if not wanted:
        return list(rows)
    links = await webapp_tokens(session, settings, wanted)
    out = []
    for seq, event, data in rows:
        if event == "human_input_required" and "form_id" in data:
            token = links.get(uuid.UUID(data["form_id"]))
            data = {**data, "form_token": token, "form_url": form_url(settings, token) if token else None}
        out.append((seq, event, data))
    return out


async def paused_forms(
    session: AsyncSession, settings: Settings, run_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[PausedNode]]:
    """The runs' waiting forms as ``pause-details``, a paused blocking run and ``workflow_paused`` show them."""
    forms = list(
        (
            await session.execute(
                select(HumanInputForm)
                .where(HumanInputForm.run_id.in_(list(run_ids)), HumanInputForm.status == FormStatus.WAITING)
                .order_by(HumanInputForm.created_at, HumanInputForm.node_id)
            )
        ).scalars()
    )
    links = await webapp_tokens(session, settings, [f.id for f in forms])
    out: dict[uuid.UUID, list[PausedNode]] = {}
    for form in forms:
        token = links.get(form.id)
        out.setdefault(form.run_id, []).append(
            PausedNode(
                node_id=form.node_id,
                node_title=form.node_title,
                pause_type=PauseType(
                    type="human_input",
                    form_id=form.id,
                    form_token=token,
                    form_url=form_url(settings, token) if token else None,
                    expiration_time=int(deadline(form).timestamp()),
                ),
            )
        )
    return out


async def paused_nodes(session: AsyncSession, settings: Settings, run_id: uuid.UUID) -> list[PausedNode]:
    return (await paused_forms(session, settings, [run_id])).get(run_id, [])


def deadline(form: HumanInputForm) -> datetime.datetime:
    """The earlier of the node deadline and the global one."""
    if form.expiration_time is None:
        return form.global_expiration_time
    return min(form.expiration_time, form.global_expiration_time)


async def find_by_token(
    session: AsyncSession, token: str, *, lock: bool = False
) -> tuple[HumanInputForm, HumanInputRecipient]:
    """The form a token answers. Unknown tokens: NotFound (whether malformed, forged or of a deleted form)."""
    if not token or len(token) > 128:
        raise NotFound("Form not found.")
    wanted = tokens.token_hash(token)
    recipient = await session.scalar(
        select(HumanInputRecipient).where(HumanInputRecipient.token_hash == wanted)
    )
    if recipient is None or not tokens.same_hash(recipient.token_hash, wanted):
        raise NotFound("Form not found.")
    query = select(HumanInputForm).where(HumanInputForm.id == recipient.form_id)
    form = await session.scalar(query.with_for_update() if lock else query)
    if form is None:
        raise NotFound("Form not found.")
    return form, recipient
