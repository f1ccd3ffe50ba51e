"""``GET /v1/meta`` and ``GET /v1/site`` (app key): the app's tool icons and its web-app "site", as Dify shows them.

Sluice has no web-app sites, so the site is made from the app and its published DSL's ``app`` block (title = app
name, icon fields from the DSL with Dify's defaults for a new app, ``default_language`` en-US, workflow steps
shown); fields a Dify site leaves unset stay null. The meta lists an icon per ``tool`` node of the published
graph: builtin providers by URL, API providers by Dify's emoji fallback (Sluice stores no provider icons).
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Controller, get
from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import NotFound, responses
from app.settings import Settings
from app.tenancy import services as tenancy
from app.tenancy.services import AppKey
from app.workflows import services

#: Dify's defaults for a new app's icon (``AppService.create_app``) and for an API tool without one.
DEFAULT_ICON, DEFAULT_ICON_BACKGROUND = "🤖", "#FFEAD5"
API_TOOL_ICON = {"background": "#252525", "content": "😁"}


class AppMeta(msgspec.Struct):
    tool_icons: dict[str, str | dict[str, str]]


class Site(msgspec.Struct):
    title: str
    chat_color_theme: str | None
    chat_color_theme_inverted: bool
    icon_type: str | None
    icon: str | None
    icon_background: str | None
    icon_url: str | None
    description: str | None
    copyright: str | None
    privacy_policy: str | None
    input_placeholder: str | None
    custom_disclaimer: str
    default_language: str
    show_workflow_steps: bool
    use_icon_as_answer_icon: bool


def tool_icons(graph: dict[str, Any], public_url: str) -> dict[str, str | dict[str, str]]:
    """Dify's ``AppService.get_app_meta``: one icon per tool node, keyed by the tool's name."""
    icons: dict[str, str | dict[str, str]] = {}
    for node in graph.get("nodes") or []:
        data = node.get("data") if isinstance(node, dict) else None
        if not isinstance(data, dict) or data.get("type") != "tool":
            continue
        name, provider_id = str(data.get("tool_name") or ""), str(data.get("provider_id") or "")
        if data.get("provider_type") == "builtin":
            icons[name] = (
                f"{public_url}/console/api/workspaces/current/tool-provider/builtin/{provider_id}/icon"
            )
        elif data.get("provider_type") == "api":
            icons[name] = dict(API_TOOL_ICON)
    return icons


class AppSiteController(Controller):
    path = "/v1"
    tags = ["service api: apps"]

    @get("/meta", responses=responses(401))
    async def app_meta(self, db_session: AsyncSession, settings: Settings, key: AppKey) -> AppMeta:
        """The icons of the tools the published workflow uses (`{}` without tools)."""
        try:
            workflow = await services.published(db_session, key.app_id)
        except NotFound:
            return AppMeta(tool_icons={})
        return AppMeta(tool_icons=tool_icons(workflow.graph, settings.public_url))

    @get("/site", responses=responses(401))
    async def app_site(self, db_session: AsyncSession, key: AppKey) -> Site:
        """The app's web-app settings, made from the app and its DSL (Sluice serves no web app)."""
        app = await tenancy.get_app(db_session, key.app_id)
        try:
            block = (await services.published(db_session, key.app_id)).dsl.get("app") or {}
        except NotFound:
            block = {}
        icon_type = block.get("icon_type") or "emoji"
        return Site(
            title=app.name,
            chat_color_theme=None,
            chat_color_theme_inverted=False,
            icon_type=icon_type,
            icon=str(block.get("icon") or DEFAULT_ICON),
            icon_background=str(block.get("icon_background") or DEFAULT_ICON_BACKGROUND),
            icon_url=None,  # Dify signs a URL for image icons; Sluice stores no icon images
            description=app.description,
            copyright=None,
            privacy_policy=None,
            input_placeholder=None,
            custom_disclaimer="",
            default_language="en-US",
            show_workflow_steps=True,
            use_icon_as_answer_icon=bool(block.get("use_icon_as_answer_icon")),
        )
