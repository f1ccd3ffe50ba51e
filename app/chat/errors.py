"""The chat API's domain errors, with Dify's codes and texts (chatflow spec 0.2)."""

from __future__ import annotations

from app.errors import Conflict, InvalidParam, NotFound, SluiceError


class BadRequest(SluiceError):
    """Bad request."""

    status, code = 400, "bad_request"


class QueryRequired(InvalidParam):
    """query is required"""


class WorkflowNotPublished(InvalidParam):
    """Workflow not published"""


class ConversationNotExists(NotFound):
    """Conversation Not Exists."""


class LastConversationNotExists(NotFound):
    """Last Conversation Not Exists."""


class MessageNotExists(NotFound):
    """Message Not Exists."""


class FirstMessageNotExists(NotFound):
    """First Message Not Exists."""


class VariableNotExists(NotFound):
    """Conversation Variable Not Exists."""


class EndUserNotFound(SluiceError):
    """End user not found."""

    status, code = 404, "end_user_not_found"


class ConversationBusy(Conflict):
    """Another turn of this conversation is still running or waiting for human input: wait for it to end (or stop
    it with its task_id) before sending the next message."""

    code = "conversation_busy"


class SuggestionsDisabled(BadRequest):
    """Suggested Questions Is Disabled."""
