"""Email delivery of human-input forms through a real SMTP server (aiosmtpd) and a real worker."""

from __future__ import annotations

import asyncio
import re
from email.message import EmailMessage

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from app.human_input import mail
from app.settings import Settings
from jobs.app import app as procrastinate_app
from tests.human_input.mail_helpers import (
    SEND_FROM,
    email_delivery_id,
    email_dsl,
    email_recipients,
    smtp_fixture,  # noqa: F401
    unique_addresses,
    wait_for_job,
)
from tests.support.service import service_settings
from tests.support.smtp_server import SMTPServer
from tests.workflows.conftest import AppUnderTest, import_app


@pytest.fixture(scope="module")
def wf_settings(wf_database: str, tmp_path_factory: pytest.TempPathFactory, smtp: SMTPServer) -> Settings:
    return service_settings(
        wf_database,
        tmp_path_factory.mktemp("mail"),
        worker_poll_seconds=0.1,
        public_url="http://sluice.test:8080",
        mail_type="smtp",
        smtp_server="127.0.0.1",
        smtp_port=smtp.port,
        mail_default_send_from=SEND_FROM,
    )


async def start_paused(client: AsyncTestClient[Litestar], app: AppUnderTest) -> str:
    response = await client.post(
        "/v1/workflows/run",
        json={"inputs": {}, "response_mode": "blocking", "user": "u"},
        headers=app.headers,
    )
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert data["status"] == "paused", data
    return str(data["id"])


async def wait_for_mail(
    smtp: SMTPServer, address: str, count: int = 1, timeout: float = 30
) -> list[EmailMessage]:
    deadline = asyncio.get_running_loop().time() + timeout
    while len(smtp.inbox.to(address)) < count:
        assert asyncio.get_running_loop().time() < deadline, f"no mail for {address}"
        await asyncio.sleep(0.05)
    return smtp.inbox.to(address)


def form_link(message: EmailMessage, public_url: str) -> tuple[str, str]:
    """The link in the plain-text body, and its token."""
    body = message.get_body(preferencelist=("plain",))
    assert body is not None
    found = re.search(re.escape(public_url) + r"/form/([A-Za-z0-9_-]+)", body.get_content())
    assert found, body.get_content()
    return found.group(0), found.group(1)


async def test_each_recipient_gets_a_link_that_opens_the_form(
    wf_client: AsyncTestClient[Litestar], wf_settings: Settings, smtp: SMTPServer, wf_engine: AsyncEngine
) -> None:
    first, second = unique_addresses()
    app = await import_app(wf_client, email_dsl(first, second))
    run_id = await start_paused(wf_client, app)

    tokens = []
    for address in (first, second):
        [message] = await wait_for_mail(smtp, address)
        assert message["Subject"] == "Budget approval"
        assert message["From"] == SEND_FROM
        link, token = form_link(message, wf_settings.public_url)
        plain = message.get_body(preferencelist=("plain",))
        assert plain is not None
        assert (
            plain.get_content().replace("\r\n", "\n") == f"Hello,\n\nplease decide here: {link}\n\nThanks\n"
        )
        rich = message.get_body(preferencelist=("html",))
        assert rich is not None
        assert f'<a href="{link}">' in rich.get_content()
        opened = await wf_client.get(f"/api/form/human_input/{token}")
        assert opened.status_code == 200, opened.text
        assert opened.json()["form_content"] == "Approve?"
        tokens.append(token)
    assert tokens[0] != tokens[1]
    assert smtp.inbox.to("nobody@x.test") == []  # the disabled email method sends nothing

    delivery_id = await email_delivery_id(wf_engine, run_id)
    assert await wait_for_job(wf_engine, delivery_id) == ("succeeded", 1)  # one attempt
    recipients = await email_recipients(wf_engine, run_id)
    assert [r.email for r in recipients] == [first, second]
    assert all(r.sent_at is not None and r.last_error is None for r in recipients)

    # Running the job again (a retry, a duplicate) sends nothing: both are served.
    sessions = async_sessionmaker(wf_engine, expire_on_commit=False)
    assert await mail.send_delivery(sessions, wf_settings, delivery_id) == 0
    assert len(smtp.inbox.to(first)) == len(smtp.inbox.to(second)) == 1


async def test_smtp_refusal_is_retried_without_resending_to_those_served(
    wf_client: AsyncTestClient[Litestar], smtp: SMTPServer, wf_engine: AsyncEngine
) -> None:
    first, second = unique_addresses()
    smtp.inbox.refuse(first)  # the first attempt: 451 for the first, accepted for the second
    app = await import_app(wf_client, email_dsl(first, second))
    run_id = await start_paused(wf_client, app)
    delivery_id = await email_delivery_id(wf_engine, run_id)

    await wait_for_mail(smtp, second)
    # The message reaches the server before its sent_at commits: wait for both records.
    deadline = asyncio.get_running_loop().time() + 10
    while True:
        recipients = await email_recipients(wf_engine, run_id)
        if recipients[0].last_error and recipients[1].sent_at is not None:
            break
        assert asyncio.get_running_loop().time() < deadline, "the refusal or the delivery was not recorded"
        await asyncio.sleep(0.05)
    assert "451" in (recipients[0].last_error or "")
    assert recipients[0].sent_at is None
    assert recipients[1].sent_at is not None

    await wait_for_mail(smtp, first)  # the retry, a few seconds later
    status, attempts = await wait_for_job(wf_engine, delivery_id)
    assert status == "succeeded"
    assert attempts == 2
    assert smtp.inbox.refused.count(first) == 1
    assert len(smtp.inbox.to(first)) == len(smtp.inbox.to(second)) == 1
    recipients = await email_recipients(wf_engine, run_id)
    assert len(recipients) == 2
    assert all(r.sent_at is not None and r.last_error is None for r in recipients)


async def test_direct_send_raises_on_failure_and_skips_the_served(
    wf_client: AsyncTestClient[Litestar], wf_settings: Settings, smtp: SMTPServer, wf_engine: AsyncEngine
) -> None:
    first, second = unique_addresses()
    app = await import_app(wf_client, email_dsl(first, second))
    run_id = await start_paused(wf_client, app)
    delivery_id = await email_delivery_id(wf_engine, run_id)
    await wait_for_job(wf_engine, delivery_id)
    assert len(smtp.inbox.to(first)) == len(smtp.inbox.to(second)) == 1

    # Pretend the first was never served, and the server refuses it once: the call fails and records why.
    async with wf_engine.begin() as conn:
        await conn.exec_driver_sql(
            "UPDATE human_input_recipients SET sent_at = NULL WHERE email = $1", (first,)
        )
    smtp.inbox.refuse(first)
    sessions = async_sessionmaker(wf_engine, expire_on_commit=False)
    with pytest.raises(mail.MailDeliveryFailed):
        await mail.send_delivery(sessions, wf_settings, delivery_id)
    assert (await email_recipients(wf_engine, run_id))[0].last_error
    assert await mail.send_delivery(sessions, wf_settings, delivery_id) == 1
    assert len(smtp.inbox.to(first)) == 2
    assert len(smtp.inbox.to(second)) == 1


def test_the_mail_task_is_registered_with_a_retry_strategy() -> None:
    task = procrastinate_app.tasks["send_human_input_email"]
    assert task.queue == "mail"
    assert task.retry_strategy is not None
    assert (task.retry_strategy.max_attempts or 0) >= 3
