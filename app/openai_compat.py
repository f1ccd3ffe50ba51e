"""What the OpenAI-compatible clients (chat for the llm node, embeddings for knowledge) share."""

from __future__ import annotations

from collections.abc import Mapping

import httpx


def server_message(response: httpx.Response) -> str:
    """The error message an OpenAI-compatible server put in its reply, else the start of the body."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, Mapping):
        error = body.get("error")
        if isinstance(error, Mapping) and error.get("message"):
            return str(error["message"])
        for key in ("error", "message", "detail"):
            if isinstance(body.get(key), str) and body[key]:
                return str(body[key])
    text = response.text.strip()
    return text[:500] if text else response.reason_phrase
