"""Without MAIL_TYPE, email deliveries send nothing and fail nothing (a warning says why)."""

from __future__ import annotations

import pytest
import structlog
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from app.human_input import mail
from app.settings import Settings
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
from tests.workflows.conftest import import_app


@pytest.fixture(scope="module")
def wf_settings(wf_database: str, tmp_path_factory: pytest.TempPathFactory, smtp: SMTPServer) -> Settings:
    """An SMTP server is there and named, but MAIL_TYPE is not set."""
    return service_settings(
        wf_database,
        tmp_path_factory.mktemp("nomail"),
        worker_poll_seconds=0.1,
        smtp_server="127.0.0.1",
        smtp_port=smtp.port,
        mail_default_send_from=SEND_FROM,
    )


async def test_nothing_is_sent_and_nothing_fails(
    wf_client: AsyncTestClient[Litestar], wf_settings: Settings, smtp: SMTPServer, wf_engine: AsyncEngine
) -> None:
    first, second = unique_addresses()
    app = await import_app(wf_client, email_dsl(first, second))
    response = await wf_client.post(
        "/v1/workflows/run",
        json={"inputs": {}, "response_mode": "blocking", "user": "u"},
        headers=app.headers,
    )
    data = response.json()["data"]
    assert data["status"] == "paused", data
    delivery_id = await email_delivery_id(wf_engine, data["id"])

    assert (await wait_for_job(wf_engine, delivery_id))[0] == "succeeded"
    assert smtp.inbox.to(first) == smtp.inbox.to(second) == []
    recipients = await email_recipients(wf_engine, data["id"])
    assert len(recipients) == 2
    assert all(r.sent_at is None and r.last_error is None for r in recipients)

    with structlog.testing.capture_logs() as logs:
        sent = await mail.send_delivery(async_sessionmaker(wf_engine), wf_settings, delivery_id)
    assert sent == 0
    assert [e["delivery_id"] for e in logs if e["event"] == "mail_not_configured"] == [str(delivery_id)]
