"""What the mail delivery tests share: the SMTP server fixture and a DSL with an email delivery."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from db.models import HumanInputDelivery, HumanInputForm, HumanInputRecipient
from tests.support.smtp_server import SMTPServer

SEND_FROM = "Sluice <no-reply@sluice.test>"


@pytest.fixture(scope="module", name="smtp")
def smtp_fixture() -> Iterator[SMTPServer]:
    server = SMTPServer().start()
    try:
        yield server
    finally:
        server.stop()


def email_dsl(*addresses: str) -> str:
    items = ", ".join(f"{{type: external, email: {a}}}" for a in addresses)
    return f"""
version: 0.5.0
kind: app
app: {{name: Mailed approval, mode: workflow}}
workflow:
  graph:
    nodes:
      - id: start
        data: {{type: start, title: Start, variables: []}}
      - id: ask
        data:
          type: human-input
          title: Approve the budget
          form_content: "Approve?"
          inputs: []
          user_actions: [{{id: approve, title: Approve}}]
          delivery_methods:
            - {{id: web, type: webapp, enabled: true, config: {{}}}}
            - id: mail
              type: email
              enabled: true
              config:
                recipients: {{whole_workspace: false, items: [{items}]}}
                subject: "Budget approval"
                body: "Hello,\\n\\nplease decide here: {{{{#url#}}}}\\n\\nThanks"
                debug_mode: false
            - {{id: unused, type: email, enabled: false, config: {{recipients: {{items: [{{type: external, email: nobody@x.test}}]}}}}}}
      - id: end
        data: {{type: end, title: End, outputs: [{{variable: action, value_selector: [ask, __action_id]}}]}}
    edges:
      - {{id: e1, source: start, target: ask}}
      - {{id: e2, source: ask, target: end, sourceHandle: approve}}
"""


def unique_addresses(count: int = 2) -> list[str]:
    tag = uuid.uuid4().hex[:8]
    return [f"{chr(ord('a') + i)}-{tag}@example.test" for i in range(count)]


async def email_recipients(engine: AsyncEngine, run_id: str) -> list[HumanInputRecipient]:
    async with AsyncSession(engine) as session:
        return list(
            (
                await session.scalars(
                    select(HumanInputRecipient)
                    .join(HumanInputForm, HumanInputForm.id == HumanInputRecipient.form_id)
                    .where(HumanInputForm.run_id == uuid.UUID(run_id), HumanInputRecipient.kind == "email")
                    .order_by(HumanInputRecipient.email)
                )
            ).all()
        )


async def email_delivery_id(engine: AsyncEngine, run_id: str) -> uuid.UUID:
    async with AsyncSession(engine) as session:
        delivery_id = await session.scalar(
            select(HumanInputDelivery.id)
            .join(HumanInputForm, HumanInputForm.id == HumanInputDelivery.form_id)
            .where(HumanInputForm.run_id == uuid.UUID(run_id), HumanInputDelivery.method == "email")
        )
    assert delivery_id is not None
    return delivery_id


async def mail_job(engine: AsyncEngine, delivery_id: uuid.UUID) -> tuple[str, int] | None:
    """(status, attempts) of the delivery's mail job."""
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                text(
                    "SELECT status::text, attempts FROM procrastinate_jobs"
                    " WHERE task_name = 'send_human_input_email' AND args->>'delivery_id' = :d"
                ),
                {"d": str(delivery_id)},
            )
        ).first()
    return (row[0], row[1]) if row else None


async def wait_for_job(engine: AsyncEngine, delivery_id: uuid.UUID, timeout: float = 30) -> tuple[str, int]:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        job = await mail_job(engine, delivery_id)
        if job is not None and job[0] in ("succeeded", "failed"):
            return job
        assert asyncio.get_running_loop().time() < deadline, f"mail job still {job}"
        await asyncio.sleep(0.05)
