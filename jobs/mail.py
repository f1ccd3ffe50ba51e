"""Email delivery of human-input forms: one job per email delivery, retried with backoff on SMTP failure."""

from __future__ import annotations

import uuid

import procrastinate

from app.human_input import mail
from db.queue import Task
from jobs.app import task

#: Waits 3, 9, 27, 81, 243 seconds between attempts: a few minutes of SMTP outage or greylisting is absorbed.
MAIL_RETRY = procrastinate.RetryStrategy(max_attempts=6, exponential_wait=3)


@task(Task.SEND_HUMAN_INPUT_EMAIL, retry=MAIL_RETRY, pass_context=True)
async def send_human_input_email(context: procrastinate.JobContext, delivery_id: str) -> None:
    """Email the recipients of one delivery not yet served (those already served are never sent again)."""
    resources = context.additional_context["resources"]
    await mail.send_delivery(resources.sessions, resources.settings, uuid.UUID(delivery_id))
