"""Email delivery of human-input forms over SMTP (Dify's MAIL_TYPE=smtp settings).

One job per email delivery (``send_human_input_email``, queue ``mail``). Each recipient gets its own link —
``{public_url}/form/{token}``, the token rebuilt from the recipient's nonce — and is marked ``sent_at`` in a
transaction of its own, so a retry after a partial failure only sends to those not yet served.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import smtplib
import uuid
from collections.abc import Sequence
from email.message import EmailMessage
from typing import Any

import structlog
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.errors import SluiceError
from app.human_input import tokens
from app.human_input.forms import DeliveryMethod, FormStatus
from app.settings import Settings
from db.models import HumanInputDelivery, HumanInputForm, HumanInputRecipient

log = structlog.get_logger()

URL_PLACEHOLDER = "{{#url#}}"
SMTP_TIMEOUT_SECONDS = 30.0
DEFAULT_BODY = "{title} is waiting for your input.\n\nOpen the form: " + URL_PLACEHOLDER + "\n"


class MailDeliveryFailed(SluiceError):
    """Some recipients of a human-input form could not be emailed; the job is retried."""

    status, code = 502, "mail_delivery_failed"


async def send_delivery(
    sessions: async_sessionmaker[AsyncSession], settings: Settings, delivery_id: uuid.UUID
) -> int:
    """Email every recipient of the delivery not yet served; the number sent.

    Raises MailDeliveryFailed after trying everyone if any send failed (its ``last_error`` is recorded).
    """
    if settings.mail_type is None:
        log.warning("mail_not_configured", delivery_id=str(delivery_id))
        return 0
    async with sessions() as session:
        delivery = await session.get(HumanInputDelivery, delivery_id)
        form = await session.get(HumanInputForm, delivery.form_id) if delivery is not None else None
        pending = (
            await session.scalars(
                select(HumanInputRecipient.id)
                .where(
                    HumanInputRecipient.delivery_id == delivery_id,
                    HumanInputRecipient.kind == DeliveryMethod.EMAIL,
                    HumanInputRecipient.sent_at.is_(None),
                )
                .order_by(HumanInputRecipient.email)
            )
        ).all()
    if delivery is None or form is None:
        log.info("mail_delivery_gone", delivery_id=str(delivery_id))
        return 0
    if form.status != FormStatus.WAITING:
        log.info("mail_skipped_form_closed", delivery_id=str(delivery_id), form_status=form.status)
        return 0
    sent, failed = 0, 0
    for recipient_id in pending:
        outcome = await _send_one(sessions, settings, delivery.config, form.node_title, recipient_id)
        sent += outcome is True
        failed += outcome is False
    if failed:
        raise MailDeliveryFailed(f"{failed} of {len(pending)} recipients could not be emailed")
    return sent


async def _send_one(
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    config: dict[str, Any],
    node_title: str,
    recipient_id: uuid.UUID,
) -> bool | None:
    """Send to one recipient: True when sent, False when it failed, None when someone else has it."""
    async with sessions() as session, session.begin():
        # The claim: the row stays locked while its message is sent and ``sent_at`` is set, so a second run of
        # this job (a stalled job retried while the first is still alive) skips it instead of sending twice.
        # Committed with ``sent_at`` as soon as the SMTP server accepted, before the next recipient.
        recipient = await session.scalar(
            select(HumanInputRecipient)
            .where(HumanInputRecipient.id == recipient_id, HumanInputRecipient.sent_at.is_(None))
            .with_for_update(skip_locked=True)
        )
        if recipient is None or recipient.email is None:
            return None
        link = f"{settings.public_url}/form/{tokens.make_token(settings.secret_key, recipient.nonce)}"
        message = build_message(settings, config, node_title, recipient.email, link)
        try:
            await asyncio.to_thread(_smtp_send, settings, message)
        except (OSError, smtplib.SMTPException) as exc:
            recipient.last_error = f"{type(exc).__name__}: {exc}"[:2000]
            log.warning("mail_send_failed", recipient_id=str(recipient_id), error=recipient.last_error)
            return False
        recipient.sent_at = await session.scalar(text("SELECT clock_timestamp()"))
        recipient.last_error = None
    log.info("mail_sent", recipient_id=str(recipient_id))
    return True


def build_message(
    settings: Settings, config: dict[str, Any], node_title: str, to: str, link: str
) -> EmailMessage:
    """Plain text with the link where the body says ``{{#url#}}``, and the same as HTML with the link live."""
    subject = str(config.get("subject") or f"Your input is needed: {node_title}")
    body = str(config.get("body") or DEFAULT_BODY.format(title=node_title))
    message = EmailMessage()
    message["Subject"] = " ".join(subject.split())  # no header injection through newlines
    message["From"] = settings.mail_default_send_from or ""
    message["To"] = to
    message.set_content(body.replace(URL_PLACEHOLDER, link))
    message.add_alternative(_html(body.split(URL_PLACEHOLDER), link), subtype="html")
    return message


def _html(parts: Sequence[str], link: str) -> str:
    anchor = f'<a href="{html.escape(link)}">{html.escape(link)}</a>'
    content = anchor.join(html.escape(part) for part in parts).replace("\n", "<br>\n")
    return f"<!doctype html>\n<html><body>\n{content}\n</body></html>\n"


def _smtp_send(settings: Settings, message: EmailMessage) -> None:
    """One SMTP conversation (blocking; run in a thread): implicit TLS, STARTTLS or plain, as Dify does."""
    assert settings.smtp_server
    smtp: smtplib.SMTP
    if settings.smtp_use_tls and not settings.smtp_opportunistic_tls:
        smtp = smtplib.SMTP_SSL(settings.smtp_server, settings.smtp_port, timeout=SMTP_TIMEOUT_SECONDS)
    else:
        smtp = smtplib.SMTP(settings.smtp_server, settings.smtp_port, timeout=SMTP_TIMEOUT_SECONDS)
    try:
        if settings.smtp_opportunistic_tls:
            smtp.starttls()
        if settings.smtp_username:
            smtp.login(settings.smtp_username, settings.smtp_password or "")
        smtp.send_message(message)
    finally:
        # Once the message is accepted it counts as sent: a failing QUIT must not make it go out again.
        with contextlib.suppress(OSError, smtplib.SMTPException):
            smtp.quit()
        smtp.close()
