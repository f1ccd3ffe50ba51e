"""Requests first: the checkpoint ahead of nodes that only ask (models) waits until their requests are sent.

Where a run reaches nodes that only ask, their ``node_started`` is made durable while their requests are out
(``SerializedListener.checkpoint_ahead``). Both are work for the one event loop, and whichever runs first holds
the other back: building and sending the checkpoint's write takes about as long as building and sending a model
request. What the client waits for is the model's answer, so the requests go first. Each asking node's task
carries a future in a context variable (its task's copy of the context); the node's port resolves it with
:func:`request_sent` once its request is on the wire, and the task's end resolves it too. The checkpoint waits
for all of them, :data:`HEAD_START_SECONDS` at most: a port that never says (knowledge retrieval), or a
request that cannot leave yet, holds the checkpoint back no longer than that.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from contextvars import ContextVar
from typing import Any, TypeVar

#: The longest a checkpoint ahead waits for the requests of the nodes it is ahead of.
HEAD_START_SECONDS = 0.005

_SENT: ContextVar[asyncio.Future[None] | None] = ContextVar("sluice_request_sent", default=None)

T = TypeVar("T")


def request_sent() -> None:
    """Called by a port once its request is sent: the checkpoint waiting on this node goes ahead."""
    future = _SENT.get()
    if future is not None:
        _resolve(future)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class Asks:
    """The tasks of the nodes one checkpoint is ahead of, and whether each has sent its request."""

    def __init__(self) -> None:
        self._sent: list[asyncio.Future[None]] = []

    def start(self, coroutine: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        """A task for an asking node's ``coroutine``; its port's :func:`request_sent` (or its end) counts."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        token = _SENT.set(future)
        try:
            task = asyncio.create_task(coroutine)
        finally:
            _SENT.reset(token)
        task.add_done_callback(lambda _: _resolve(future))
        self._sent.append(future)
        return task

    async def sent(self) -> None:
        """Until every node started so far has sent its request or ended (:data:`HEAD_START_SECONDS` at most)."""
        if self._sent:
            await asyncio.wait(self._sent, timeout=HEAD_START_SECONDS)
