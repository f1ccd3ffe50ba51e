"""The form's web page: untrusted content rendered inert, submit and redirect, refusals as pages, and a person
answering a real paused run in headless Chromium.

The browser tests drive Debian's Chromium (``chromium`` on PATH) through Playwright's async API; without it they
skip, saying so.
"""

from __future__ import annotations

import asyncio
import shutil
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from playwright.async_api import Browser, BrowserContext, Dialog, async_playwright, expect
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from app.human_input import forms
from app.settings import Settings
from db import embedded, urls
from db.models import HumanInputForm, Workflow, WorkflowRun
from tests.conftest import ADMIN_TOKEN, Tenant, new_database
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
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    html = page.text

    # Raw HTML in the Markdown is shown as text, not executed; the javascript: link is not a link.
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "[x](javascript:alert(1))" in html
    assert "<script" not in html.lower()
    assert "<img" not in html.lower()
    assert 'href="javascript:' not in html.lower()
    tags = Tags(html).tags
    assert not [(t, a) for t, a in tags if t in ("script", "img", "iframe", "object")]
    assert not [(t, n) for t, a in tags for n in a if n.startswith("on")], "no event-handler attribute"
    assert not [a for _, a in tags if (a.get("href") or "").strip().lower().startswith("javascript:")]

    # Markdown still works; the output placeholder is a chip; titles and defaults are escaped.
    assert "<h2>Please review</h2>" in html
    assert "<strong>bold</strong>" in html
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
    assert page.headers["referrer-policy"] == "no-referrer"
    assert page.headers["cache-control"] == "no-store"


async def test_submit_redirects_to_the_confirmation(
    client: AsyncTestClient[Litestar], session: AsyncSession, settings: Settings, tenant: Tenant
) -> None:
    token = await open_form(session, settings, tenant.app["id"])
    answer = {"title": "Fine <b>", "comment": "line one\r\nline two", "action": "reject"}
    posted = await client.post(f"/form/{token}", data=answer, follow_redirects=False)
    assert posted.status_code == 303
    assert posted.headers["location"] == f"/form/{token}"

    page = await client.get(f"/form/{token}")
    assert page.status_code == 200
    assert "Thank you — this form has been submitted" in page.text
    assert "Reject &lt;now&gt;" in page.text
    assert "<form" not in page.text

    form, _ = await forms.find_by_token(session, token)
    await session.refresh(form)
    assert form.status == "submitted"
    assert form.action_id == "reject"
    assert form.submitted_values == {"title": "Fine <b>", "comment": "line one\nline two"}

    again = await client.post(f"/form/{token}", data={**answer, "action": "approve"}, follow_redirects=False)
    assert again.status_code == 412
    assert again.headers["content-type"].startswith("text/html")
    assert "Thank you — this form has been submitted" in again.text
    assert "Reject &lt;now&gt;" in again.text


async def test_invalid_submission_shows_the_form_again(
    client: AsyncTestClient[Litestar], session: AsyncSession, settings: Settings, tenant: Tenant
) -> None:
    token = await open_form(session, settings, tenant.app["id"])
    missing = await client.post(f"/form/{token}", data={"title": "<kept>", "action": "approve"})
    assert missing.status_code == 400
    assert missing.headers["content-type"].startswith("text/html")
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
        assert refused.status_code == 400, bad
        assert 'class="error"' in refused.text, bad

    form, _ = await forms.find_by_token(session, token)
    await session.refresh(form)
    assert form.status == "waiting"


async def test_unknown_token_is_a_404_page(client: AsyncTestClient[Litestar]) -> None:
    for token in ("nope", "x" * 300, "%00"):
        page = await client.get(f"/form/{token}")
        assert page.status_code == 404, token
        assert page.headers["content-type"].startswith("text/html"), token
        assert "Form not found" in page.text
        posted = await client.post(f"/form/{token}", data={"action": "approve"})
        assert posted.status_code == 404
        assert "Form not found" in posted.text


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
    assert page.status_code == 200
    assert "This form is no longer open" in page.text
    assert "<form" not in page.text
    answer = {"title": "t", "comment": "c", "action": "approve"}
    posted = await client.post(f"/form/{token}", data=answer, follow_redirects=False)
    assert posted.status_code == 412
    assert "This form is no longer open" in posted.text
    invalid = await client.post(f"/form/{token}", data={"action": "approve"}, follow_redirects=False)
    assert invalid.status_code == 412
    assert "This form is no longer open" in invalid.text


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


CHROMIUM = shutil.which("chromium")
NO_CHROMIUM = "no chromium on PATH: apt-get install -y chromium (Debian's package; .ci/run installs it)"
#: Playwright launches the system's Chromium (never a browser of its own: no download at run time). As root in a
#: container Chromium's own sandbox cannot start, hence chromium_sandbox=False (Playwright passes --no-sandbox).
LAUNCH: dict[str, Any] = {"chromium_sandbox": False, "args": ["--disable-gpu"]}
#: The machine is shared: give auto-waiting assertions more than Playwright's 5 s.
WAIT_MS = 15_000

#: Run from the page's own document: append an inline script and report whether it ran, or which CSP directive
#: refused it (Playwright's evaluate is not subject to the page's CSP, the element it inserts is).
INJECT_SCRIPT = """() => new Promise(resolve => {
  document.addEventListener("securitypolicyviolation",
    e => resolve({ran: window.__injected === true, directive: e.effectiveDirective}), {once: true});
  const script = document.createElement("script");
  script.textContent = "window.__injected = true";
  document.body.append(script);
  if (window.__injected) resolve({ran: true, directive: null});
})"""


@pytest.fixture(scope="module")
def page_service(server_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveService]:
    """`python -m app up` (API + worker) on a loopback port, in a database of its own, with a secret key."""
    if CHROMIUM is None:
        pytest.skip(NO_CHROMIUM)
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


@pytest.fixture(scope="module")
def review_key(page_service: LiveService) -> str:
    """The Service API key of the REVIEW app, imported once into the page service."""
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    with httpx.Client(base_url=page_service.base_url, timeout=30, headers=admin) as console:
        imported = console.post(
            "/console/api/apps/imports", json={"mode": "yaml-content", "yaml_content": REVIEW}
        )
        assert imported.status_code == 200, imported.text
        app_id = imported.json()["app_id"]
        return str(console.post(f"/console/api/apps/{app_id}/api-keys").json()["token"])


@pytest.fixture
async def api(page_service: LiveService, review_key: str) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"Authorization": f"Bearer {review_key}"}
    async with httpx.AsyncClient(base_url=page_service.base_url, timeout=30, headers=headers) as client:
        yield client


@pytest.fixture(scope="module")
async def chromium() -> AsyncIterator[Browser]:
    """Debian's headless Chromium, driven by Playwright, one process for the module."""
    if CHROMIUM is None:
        pytest.skip(NO_CHROMIUM)
    expect.set_options(timeout=WAIT_MS)
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, **LAUNCH)
        yield browser
        await browser.close()


@pytest.fixture
async def browser(chromium: Browser) -> AsyncIterator[BrowserContext]:
    """A fresh profile (cookies, cache) per test; every page in it fails the test if a script opens a dialog."""
    context = await chromium.new_context(viewport={"width": 1000, "height": 900})
    context.set_default_timeout(WAIT_MS)
    dialogs: list[str] = []

    async def on_dialog(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        await dialog.dismiss()

    context.on("page", lambda page: page.on("dialog", on_dialog))
    yield context
    await context.close()
    assert dialogs == [], "a script ran on the form page"


async def paused_run(api: httpx.AsyncClient, doc: str) -> tuple[str, str]:
    """Start the REVIEW workflow; returns the paused run's id and its form's token."""
    started = await api.post(
        "/v1/workflows/run", json={"inputs": {"doc": doc}, "response_mode": "blocking", "user": "u1"}
    )
    assert started.status_code == 200, started.text
    run = started.json()["data"]
    assert run["status"] == "paused", run
    details = await api.get(f"/v1/workflows/run/{run['id']}/pause-details")
    assert details.status_code == 200, details.text
    return run["id"], str(details.json()["paused_nodes"][0]["pause_type"]["form_token"])


async def finished_run(api: httpx.AsyncClient, run_id: str, timeout: float = 30.0) -> dict[str, Any]:
    """The run once the worker has resumed and finished it."""
    deadline = time.monotonic() + timeout
    while (run := (await api.get(f"/v1/workflows/run/{run_id}")).json())["status"] != "succeeded":
        assert run["status"] in ("paused", "running"), run
        assert time.monotonic() < deadline, run
        await asyncio.sleep(0.2)
    return dict(run)


async def test_a_person_approves_in_chromium(
    page_service: LiveService, api: httpx.AsyncClient, browser: BrowserContext, tmp_path: Path
) -> None:
    # The run's input is untrusted and flows into the form's Markdown.
    doc = "Q3 <plan><img src=x onerror=alert(1)>"
    run_id, token = await paused_run(api, doc)
    url = f"{page_service.base_url}/form/{token}"
    page = await browser.new_page()

    opened = await page.goto(url)
    assert opened is not None
    assert opened.status == 200
    assert opened.headers["content-security-policy"].startswith("default-src 'none'")
    await expect(page).to_have_title("Review the draft")
    await expect(page.get_by_role("heading", level=1)).to_have_text("Review the draft")
    await expect(page.get_by_role("heading", level=2)).to_have_text("Please review")
    content = page.locator(".content")
    await expect(content).to_contain_text(f"The draft is {doc}.")  # shown as text, not markup
    await expect(content.locator("strong")).to_have_text(doc)
    await expect(content.locator("img, script")).to_have_count(0)
    await expect(content.locator(".placeholder")).to_have_text("notes")
    await expect(page.get_by_label("notes")).to_have_value("Looks fine")
    await expect(page.get_by_role("button")).to_have_text(["Approve", "Reject"])
    assert len(await page.screenshot(path=tmp_path / "form.png")) > 5000

    # The page's CSP holds in the browser: an inline script put into the document does not run.
    assert await page.evaluate(INJECT_SCRIPT) == {"ran": False, "directive": "script-src-elem"}

    await page.get_by_label("notes").fill("Ship it.\nAfter the <review>.")
    async with page.expect_response(lambda r: r.request.method == "POST") as posting:
        await page.get_by_role("button", name="Approve", exact=True).click()
    posted = await posting.value
    assert posted.status == 303
    assert posted.headers["location"] == f"/form/{token}"
    await expect(page.get_by_text("Thank you — this form has been submitted.")).to_be_visible()
    await expect(page).to_have_url(url)  # the POST redirected back to the page
    await expect(page.get_by_text("Chosen action:")).to_have_text("Chosen action: Approve")
    await expect(page.locator("form")).to_have_count(0)
    await page.screenshot(path=tmp_path / "submitted.png")

    run = await finished_run(api, run_id)
    assert run["outputs"] == {"notes": "Ship it.\nAfter the <review>.", "action": "approve"}


async def test_refusals_show_in_chromium(
    page_service: LiveService, api: httpx.AsyncClient, browser: BrowserContext
) -> None:
    run_id, token = await paused_run(api, "Q4")
    url = f"{page_service.base_url}/form/{token}"
    first, second = await browser.new_page(), await browser.new_page()  # the form open in two tabs
    for page in (first, second):
        await page.goto(url)
        await expect(page.get_by_label("notes")).to_have_value("Looks fine")

    # A page that no longer sends a field the form needs: the error is shown above the form, nothing is lost.
    await first.get_by_label("notes").evaluate("field => field.closest('.field').remove()")
    async with first.expect_response(lambda r: r.request.method == "POST") as posting:
        await first.get_by_role("button", name="Approve", exact=True).click()
    assert (await posting.value).status == 400
    await expect(first.get_by_role("alert")).to_have_text("notes: is required")
    await expect(first.get_by_label("notes")).to_have_value("")
    assert (await api.get(f"/v1/workflows/run/{run_id}")).json()["status"] == "paused"

    await first.get_by_label("notes").fill("Typed in the first tab.")
    await first.get_by_role("button", name="Approve", exact=True).click()
    await expect(first.get_by_text("Chosen action:")).to_have_text("Chosen action: Approve")

    # The second tab still shows the open form; its answer comes too late and is refused, saying what won.
    async with second.expect_response(lambda r: r.request.method == "POST") as posting:
        await second.get_by_role("button", name="Reject", exact=True).click()
    assert (await posting.value).status == 412
    await expect(second.get_by_text("Thank you — this form has been submitted.")).to_be_visible()
    await expect(second.get_by_text("Chosen action:")).to_have_text("Chosen action: Approve")
    await expect(second.locator("form")).to_have_count(0)

    run = await finished_run(api, run_id)
    assert run["outputs"] == {"notes": "Typed in the first tab.", "action": "approve"}
