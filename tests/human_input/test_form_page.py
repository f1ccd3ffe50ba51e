"""The form's web page: untrusted content rendered inert, submit and redirect, refusals as pages, and a person
answering a real paused run in headless Chromium."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from app.human_input import forms
from app.settings import Settings
from db import embedded, urls
from db.models import HumanInputForm, Workflow, WorkflowRun
from tests.conftest import ADMIN_TOKEN, Tenant, new_database
from tests.human_input.cdp import CHROMIUM, Browser
from tests.support.processes import LiveService

SECRET_KEY = "form-page-test-secret"

HOSTILE_CONTENT = """## Please review

<script>alert(1)</script>

<img src=x onerror=alert(1)>

[x](javascript:alert(1)) and **bold**; your note: {{#$output.comment#}}
"""


class Tags(HTMLParser):
    """Every start tag of a page with its attributes."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


async def open_form(session: AsyncSession, settings: Settings, app_id: str, **request: Any) -> str:
    """A waiting form on a paused run (rows only: no worker involved); returns its webapp token."""
    workflow = Workflow(app_id=uuid.UUID(app_id), version=1, graph={}, dsl={})
    session.add(workflow)
    await session.flush()
    run = WorkflowRun(
        app_id=workflow.app_id, workflow_id=workflow.id, status="paused", inputs={}, created_by="u"
    )
    session.add(run)
    await session.flush()
    events = await forms.create_form(
        session,
        msgspec.structs.replace(settings, secret_key=SECRET_KEY),
        run_id=run.id,
        app_id=workflow.app_id,
        node_id="review",
        execution_id=uuid.uuid4(),
        request={
            "node_title": "Review <the> draft",
            "form_content": HOSTILE_CONTENT,
            "inputs": [
                {"type": "text_input", "output_variable_name": "title"},
                {"type": "paragraph", "output_variable_name": "comment"},
            ],
            "resolved_default_values": {
                "title": '"><script>alert(2)</script>',
                "comment": "</textarea><script>alert(3)</script>",
            },
            "user_actions": [
                {"id": "approve", "title": "Approve", "button_style": "primary"},
                {"id": "reject", "title": "Reject <now>", "button_style": "default"},
            ],
            **request,
        },
    )
    await session.commit()
    form_id = uuid.UUID(events[0].data["form_id"])
    tokens = await forms.webapp_tokens(
        session, msgspec.structs.replace(settings, secret_key=SECRET_KEY), [form_id]
    )
    return tokens[form_id]


async def set_form(session: AsyncSession, token: str, **values: Any) -> None:
    form, _ = await forms.find_by_token(session, token)
    await session.execute(update(HumanInputForm).where(HumanInputForm.id == form.id).values(**values))
    await session.commit()


async def test_untrusted_content_is_rendered_inert(
    client: AsyncTestClient[Litestar], session: AsyncSession, settings: Settings, tenant: Tenant
) -> None:
    token = await open_form(session, settings, tenant.app["id"])
    page = await client.get(f"/form/{token}")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    html = page.text

    # Raw HTML in the Markdown is shown as text, not executed; the javascript: link is not a link.
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "[x](javascript:alert(1))" in html
    assert "<script" not in html.lower() and "<img" not in html.lower()
    assert 'href="javascript:' not in html.lower()
    tags = Tags(html).tags
    assert not [(t, a) for t, a in tags if t in ("script", "img", "iframe", "object")]
    assert not [(t, n) for t, a in tags for n in a if n.startswith("on")], "no event-handler attribute"
    assert not [a for _, a in tags if (a.get("href") or "").strip().lower().startswith("javascript:")]

    # Markdown still works; the output placeholder is a chip; titles and defaults are escaped.
    assert "<h2>Please review</h2>" in html and "<strong>bold</strong>" in html
    assert '<span class="placeholder">comment</span>' in html
    assert "<h1>Review &lt;the&gt; draft</h1>" in html
    assert 'value="&#34;&gt;&lt;script&gt;alert(2)&lt;/script&gt;"' in html
    assert "&lt;/textarea&gt;&lt;script&gt;alert(3)&lt;/script&gt;</textarea>" in html
    assert ("input", {"type": "text", "id": "field-title", "name": "title"}) in [
        (t, {k: v for k, v in a.items() if k != "value" and k != "maxlength"}) for t, a in tags
    ]
    buttons = [a for t, a in tags if t == "button"]
    assert [(b["name"], b["value"]) for b in buttons] == [("action", "approve"), ("action", "reject")]
    assert "Reject &lt;now&gt;</button>" in html
    assert [a.get("method") for t, a in tags if t == "form"] == ["post"]
    assert " UTC</time>" in html

    assert "script-src" not in page.headers["content-security-policy"]
    assert page.headers["content-security-policy"].startswith("default-src 'none'")
    assert page.headers["referrer-policy"] == "no-referrer" and page.headers["cache-control"] == "no-store"


async def test_submit_redirects_to_the_confirmation(
    client: AsyncTestClient[Litestar], session: AsyncSession, settings: Settings, tenant: Tenant
) -> None:
    token = await open_form(session, settings, tenant.app["id"])
    answer = {"title": "Fine <b>", "comment": "line one\r\nline two", "action": "reject"}
    posted = await client.post(f"/form/{token}", data=answer, follow_redirects=False)
    assert posted.status_code == 303 and posted.headers["location"] == f"/form/{token}"

    page = await client.get(f"/form/{token}")
    assert page.status_code == 200
    assert "Thank you — this form has been submitted" in page.text and "Reject &lt;now&gt;" in page.text
    assert "<form" not in page.text

    form, _ = await forms.find_by_token(session, token)
    await session.refresh(form)
    assert form.status == "submitted" and form.action_id == "reject"
    assert form.submitted_values == {"title": "Fine <b>", "comment": "line one\nline two"}

    again = await client.post(f"/form/{token}", data={**answer, "action": "approve"}, follow_redirects=False)
    assert again.status_code == 412 and again.headers["content-type"].startswith("text/html")
    assert "Thank you — this form has been submitted" in again.text and "Reject &lt;now&gt;" in again.text


async def test_invalid_submission_shows_the_form_again(
    client: AsyncTestClient[Litestar], session: AsyncSession, settings: Settings, tenant: Tenant
) -> None:
    token = await open_form(session, settings, tenant.app["id"])
    missing = await client.post(f"/form/{token}", data={"title": "<kept>", "action": "approve"})
    assert missing.status_code == 400 and missing.headers["content-type"].startswith("text/html")
    assert "comment: is required" in missing.text
    assert 'value="&lt;kept&gt;"' in missing.text  # what was typed stays, escaped
    assert "<textarea" in missing.text

    for bad in (
        {"title": "t", "comment": "c", "action": "delete"},
        {"title": "t", "comment": "c"},
        {"title": "t", "comment": "c", "extra": "x", "action": "approve"},
        {"title": "t", "comment": "nul\x00", "action": "approve"},
    ):
        refused = await client.post(f"/form/{token}", data=bad)
        assert refused.status_code == 400 and 'class="error"' in refused.text, bad

    form, _ = await forms.find_by_token(session, token)
    await session.refresh(form)
    assert form.status == "waiting"


async def test_unknown_token_is_a_404_page(client: AsyncTestClient[Litestar]) -> None:
    for token in ("nope", "x" * 300, "%00"):
        page = await client.get(f"/form/{token}")
        assert page.status_code == 404 and page.headers["content-type"].startswith("text/html"), token
        assert "Form not found" in page.text
        posted = await client.post(f"/form/{token}", data={"action": "approve"})
        assert posted.status_code == 404 and "Form not found" in posted.text


@pytest.mark.parametrize(
    "closed",
    [
        {"status": "timeout"},
        {"status": "expired"},
        {"expiration_time": forms.utcnow().replace(year=2000)},  # deadline passed, timer not run yet
    ],
)
async def test_closed_forms_say_so(
    client: AsyncTestClient[Litestar],
    session: AsyncSession,
    settings: Settings,
    tenant: Tenant,
    closed: dict[str, Any],
) -> None:
    token = await open_form(session, settings, tenant.app["id"])
    await set_form(session, token, **closed)
    page = await client.get(f"/form/{token}")
    assert page.status_code == 200 and "This form is no longer open" in page.text and "<form" not in page.text
    answer = {"title": "t", "comment": "c", "action": "approve"}
    posted = await client.post(f"/form/{token}", data=answer, follow_redirects=False)
    assert posted.status_code == 412 and "This form is no longer open" in posted.text
    invalid = await client.post(f"/form/{token}", data={"action": "approve"}, follow_redirects=False)
    assert invalid.status_code == 412 and "This form is no longer open" in invalid.text


# --- a person in a browser ------------------------------------------------------------------------

REVIEW = """
version: 0.5.0
kind: app
app: {name: Review, mode: workflow}
workflow:
  graph:
    nodes:
      - id: start
        data: {type: start, title: Start, variables: [{variable: doc, label: Doc, type: text-input, required: true, max_length: 100}]}
      - id: review
        data:
          type: human-input
          title: Review the draft
          form_content: "## Please review\\n\\nThe draft is **{{#start.doc#}}**.\\n\\nYour notes will read: {{#$output.notes#}}"
          inputs: [{type: paragraph, output_variable_name: notes, default: {type: constant, value: Looks fine}}]
          user_actions:
            - {id: approve, title: Approve, button_style: primary}
            - {id: reject, title: Reject, button_style: default}
      - id: end
        data: {type: end, title: End, outputs: [{variable: notes, value_selector: [review, notes]}, {variable: action, value_selector: [review, __action_id]}]}
    edges:
      - {id: e1, source: start, target: review}
      - {id: e2, source: review, target: end, sourceHandle: approve}
      - {id: e3, source: review, target: end, sourceHandle: reject}
"""


@pytest.fixture(scope="module")
def page_service(server_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveService]:
    """`python -m app up` (API + worker) on a loopback port, in a database of its own, with a secret key."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is absent: apt-get install -y chromium chromium-driver")
    database = new_database(server_url)
    service = LiveService(
        database,
        ADMIN_TOKEN,
        tmp_path_factory.mktemp("page") / "up.log",
        {"SLUICE_SECRET_KEY": SECRET_KEY, "SLUICE_WORKER_POLL_SECONDS": "0.1"},
    )
    try:
        service.wait_ready()
        yield service
    finally:
        service.stop()
        embedded.drop_database(server_url, urls.database_name(database))


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is absent: apt-get install -y chromium chromium-driver")
    chromium = Browser(tmp_path / "profile", tmp_path / "chromium.log")
    yield chromium
    chromium.close()


def form_token_of(api: httpx.Client, run_id: str) -> str:
    details = api.get(f"/v1/workflows/run/{run_id}/pause-details")
    assert details.status_code == 200, details.text
    return str(details.json()["paused_nodes"][0]["pause_type"]["form_token"])


def test_a_person_approves_in_chromium(page_service: LiveService, browser: Browser, tmp_path: Path) -> None:
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    with httpx.Client(base_url=page_service.base_url, timeout=30) as console:
        imported = console.post(
            "/console/api/apps/imports", json={"mode": "yaml-content", "yaml_content": REVIEW}, headers=admin
        )
        assert imported.status_code == 200, imported.text
        app_id = imported.json()["app_id"]
        key = console.post(f"/console/api/apps/{app_id}/api-keys", headers=admin).json()["token"]
    with httpx.Client(
        base_url=page_service.base_url, timeout=30, headers={"Authorization": f"Bearer {key}"}
    ) as api:
        started = api.post(
            "/v1/workflows/run",
            json={"inputs": {"doc": "Q3 <plan>"}, "response_mode": "blocking", "user": "u1"},
        )
        assert started.status_code == 200, started.text
        run = started.json()["data"]
        assert run["status"] == "paused", run
        token = form_token_of(api, run["id"])

        url = f"{page_service.base_url}/form/{token}"
        browser.open(url)
        text = browser.text()
        assert "Please review" in text and "The draft is Q3 <plan>." in text and "notes" in text
        assert browser.evaluate("document.querySelector('textarea[name=notes]').value") == "Looks fine"
        shot = browser.screenshot(tmp_path / "form.png")
        assert shot.stat().st_size > 5000

        browser.type_into("textarea[name=notes]", "Ship it.\nAfter the <review>.")
        browser.click("button[name=action][value=approve]")
        browser.wait_for("document.body.innerText.includes('Thank you')")
        assert browser.evaluate("location.href") == url  # the POST redirected back to the page
        assert "Thank you — this form has been submitted" in browser.text() and "Approve" in browser.text()
        browser.screenshot(tmp_path / "submitted.png")

        deadline = time.monotonic() + 30
        while (run := api.get(f"/v1/workflows/run/{run['id']}").json())["status"] != "succeeded":
            assert run["status"] in ("paused", "running") and time.monotonic() < deadline, run
            time.sleep(0.2)
        assert run["outputs"] == {"notes": "Ship it.\nAfter the <review>.", "action": "approve"}
