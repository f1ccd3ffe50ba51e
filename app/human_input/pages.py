"""The form's web page (``/form/{token}``): server-rendered HTML that works without JavaScript.

The token in the URL is the only credential, as for ``/api/form/human_input/{token}``. Everything a workflow
author or a run's inputs put into the form is untrusted: Markdown is rendered with raw HTML escaped and
``javascript:`` links refused, and every other value goes through Jinja2's autoescaping.
"""

from __future__ import annotations

import datetime
import functools
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

from jinja2 import Environment, PackageLoader, StrictUndefined
from litestar import Controller, Request, get, post
from litestar.enums import MediaType
from litestar.response import Redirect, Response
from markdown_it import MarkdownIt
from markdown_it.common.utils import escapeHtml
from markdown_it.renderer import RendererHTML
from markdown_it.token import Token
from markdown_it.utils import EnvType, OptionsDict
from markupsafe import Markup
from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import NotFound
from app.human_input import services
from app.human_input.forms import FormStatus, deadline, find_by_token, utcnow
from app.workflows.engine.nodes.human_input import OUTPUT_PLACEHOLDER
from db.models import HumanInputForm

BUTTON_STYLES = {"primary", "default", "accent", "ghost"}
#: The token is in the URL: never send it on as a Referer, never cache the page, never run a script. Images only
#: from here or inline: run inputs flow into the content, and a remote image would tell its owner who opened it.
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; form-action 'self'; "
        "base-uri 'none'; frame-ancestors 'none'"
    ),
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}


def _render_text(
    self: RendererHTML, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType
) -> str:
    """Text as escaped HTML, with each ``{{#$output.name#}}`` shown as a placeholder chip."""
    escaped = escapeHtml(tokens[idx].content)
    return OUTPUT_PLACEHOLDER.sub(lambda m: f'<span class="placeholder">{m.group(1)}</span>', escaped)


@functools.cache
def _markdown() -> MarkdownIt:
    # "html": False escapes raw HTML; the default link validation refuses javascript:, vbscript:, file:, data:.
    md = MarkdownIt("commonmark", {"html": False})
    md.add_render_rule("text", _render_text)
    return md


@functools.cache
def _templates() -> Environment:
    return Environment(
        loader=PackageLoader("app.human_input", "templates"), autoescape=True, undefined=StrictUndefined
    )


def render_content(markdown: str) -> Markup:
    return Markup(_markdown().render(markdown))  # noqa: S704 - markdown-it's output, raw HTML escaped


def _page(template: str, status: int, **context: Any) -> Response[str]:
    html = _templates().get_template(template).render(**context)
    return Response(content=html, status_code=status, media_type=MediaType.HTML, headers=PAGE_HEADERS)


def form_page(
    form: HumanInputForm, status: int = 200, error: str | None = None, values: Mapping[str, str] | None = None
) -> Response[str]:
    """The open form; after a refused submission, with the error and the values as they were sent."""
    shown = values if values is not None else form.resolved_default_values
    fields = [
        {
            "name": i["output_variable_name"],
            "type": i.get("type", "text_input"),
            "value": str(shown.get(i["output_variable_name"]) or ""),
        }
        for i in form.inputs
    ]
    actions = [
        {
            "id": a["id"],
            "title": a.get("title") or a["id"],
            "style": a.get("button_style") if a.get("button_style") in BUTTON_STYLES else "default",
        }
        for a in form.user_actions
    ]
    return _page(
        "form.html",
        status,
        form=form,
        content=render_content(form.form_content),
        fields=fields,
        actions=actions,
        error=error,
        deadline=deadline(form).astimezone(datetime.UTC),
        max_length=services.MAX_VALUE_LENGTH,
    )


def submitted_page(form: HumanInputForm, status: int = 200) -> Response[str]:
    titles = {a["id"]: a.get("title") or a["id"] for a in form.user_actions}
    action = titles.get(form.action_id or "", form.action_id)
    return _page("submitted.html", status, form=form, action=action)


def closed_page(form: HumanInputForm, status: int = 200) -> Response[str]:
    return _page("closed.html", status, form=form)


def not_found_page() -> Response[str]:
    return _page("not_found.html", 404)


def is_open(form: HumanInputForm) -> bool:
    return form.status == FormStatus.WAITING and deadline(form) > utcnow()


def status_page(form: HumanInputForm, status: int = 200) -> Response[str]:
    """The page for the form as it is now: open, submitted, or closed (timed out, expired, deadline passed)."""
    if form.status == FormStatus.SUBMITTED:
        return submitted_page(form, status)
    if not is_open(form):
        return closed_page(form, status)
    return form_page(form, status)


class FormPageController(Controller):
    """The page a person opens from the form link (webapp delivery, email)."""

    path = "/form"
    include_in_schema = False

    @get("/{form_token:str}")
    async def show_form(self, db_session: AsyncSession, form_token: str) -> Response[str]:
        try:
            form, _ = await find_by_token(db_session, form_token)
        except NotFound:
            return not_found_page()
        return status_page(form)

    @post("/{form_token:str}", status_code=303)
    async def submit_form(
        self, request: Request[Any, Any, Any], db_session: AsyncSession, form_token: str
    ) -> Response[Any]:
        """Submit, then redirect to the page (which now says thank you); refusals are rendered, not raised."""
        body = await request.form()
        action = body.get("action")
        # Browsers send textarea line breaks as CRLF; the API (and Dify's web app) send LF.
        inputs = {
            k: v.replace("\r\n", "\n") if isinstance(v, str) else v for k, v in body.items() if k != "action"
        }
        try:
            await services.submit(
                db_session, form_token, inputs, action if isinstance(action, str) else "", None
            )
        except NotFound:
            return not_found_page()
        except services.InvalidFormData as exc:
            form, _ = await find_by_token(db_session, form_token)
            if not is_open(form):
                return status_page(form, 412)
            values = {k: v for k, v in inputs.items() if isinstance(v, str)}
            return form_page(form, 400, exc.message, values)
        except services.FormSubmitted:
            form, _ = await find_by_token(db_session, form_token)
            return submitted_page(form, 412)
        except services.FormExpired:
            form, _ = await find_by_token(db_session, form_token)
            return closed_page(form, 412)
        # The request's "autocommit" commits 2xx only, not redirects: the submission is committed here.
        await db_session.commit()
        return Redirect(path=f"/form/{quote(form_token, safe='')}", status_code=303)
