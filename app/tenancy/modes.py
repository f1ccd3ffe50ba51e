"""Which routes an app's mode may use (chatflow spec 0.1): the mode gate, checked right after authentication."""

from __future__ import annotations

from app.errors import SluiceError
from app.tenancy.services import KeyContext

CHAT_MODES = ("chat", "agent-chat", "advanced-chat")
WORKFLOW_MODES = ("workflow", "advanced-chat")


class NotChatApp(SluiceError):
    """Please check if your app mode matches the right API route."""

    status, code = 400, "not_chat_app"


class NotWorkflowApp(SluiceError):
    """Please check if your app mode matches the right API route."""

    status, code = 400, "not_workflow_app"


class AppUnavailable(SluiceError):
    """App unavailable, please check your app configurations."""

    status, code = 400, "app_unavailable"


def require_chat_app(key: KeyContext) -> None:
    if key.app_mode not in CHAT_MODES:
        raise NotChatApp


def require_workflow_app(key: KeyContext, *, only_workflow: bool = False) -> None:
    """Run detail, logs and the event stream serve advanced-chat runs too; starting and stopping runs through the
    workflow routes does not."""
    if key.app_mode not in (("workflow",) if only_workflow else WORKFLOW_MODES):
        raise NotWorkflowApp


def require_completion_app(key: KeyContext) -> None:
    if key.app_mode != "completion":
        raise AppUnavailable
