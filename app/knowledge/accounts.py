"""Who Dify's ``created_by`` fields name, in a service without user accounts.

A Dify dataset key acts as its workspace's owner account, so everything made through the Service API is
``created_by`` that account and its datasets carry the owner's name as ``author_name``. Sluice has no accounts:
the workspace stands in for its owner (its id is the ``created_by`` id, its name the ``author_name``), so clients
get the strings Dify's document promises. ``updated_by`` stays null, as in Dify until someone edits the row.
"""

from __future__ import annotations

import uuid


def creator_id(workspace_id: uuid.UUID) -> str:
    """The ``created_by`` of anything made in a workspace (through its keys)."""
    return str(workspace_id)
