"""One commit at a time: the run's listener as the engine hands it to everything that runs concurrently.

Several coroutines of one run may ask the listener for a checkpoint at once: the engine's loop, the rounds of
an iteration (sequential ones beside that loop, parallel ones beside each other), and streaming nodes whose
``text_chunk`` flushes. A checkpoint takes the events and state gathered so far and then awaits its commit; two
in flight at once may commit in either order, so clients would read events out of order (a round's
``node_started`` before ``iteration_started``) and the run would keep the older of two states. The root engine
therefore wraps its listener in :class:`SerializedListener`, which lets one checkpoint (or chunk) through at a
time; the recording hooks only append to the listener's buffer and pass straight through.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from app.workflows.engine.asking import Asks
    from app.workflows.engine.state import Listener, NodeRun, RunState


class SerializedListener:
    def __init__(self, listener: Listener) -> None:
        self.listener = listener
        self._lock = asyncio.Lock()

    async def node_started(self, run: NodeRun, state: RunState) -> bool:
        return await self.listener.node_started(run, state)

    async def node_finished(self, run: NodeRun, state: RunState) -> bool:
        return await self.listener.node_finished(run, state)

    async def event(self, name: str, data: dict[str, Any]) -> None:
        await self.listener.event(name, data)

    async def text_chunk(self, node_id: str, text: str, selector: list[str]) -> None:
        async with self._lock:  # a chunk may flush (checkpoint) on its own
            await self.listener.text_chunk(node_id, text, selector)

    async def checkpoint(self, state: RunState) -> bool:
        async with self._lock:
            return await self.listener.checkpoint(state)

    async def checkpoint_ahead(self, state: RunState, asks: Asks | None = None) -> asyncio.Task[bool]:
        """Start a checkpoint and return its task without waiting for the commit: everything else that needs the
        listener (a chunk, the next checkpoint) waits for it. With ``asks`` (the nodes the caller starts next,
        which only ask), it begins once their requests are sent (``engine/asking.py``); meanwhile the lock
        keeps every other checkpoint and chunk out, and the engine's loop waits for this task before it
        records anything of those nodes."""
        await self._lock.acquire()
        try:
            task = asyncio.ensure_future(self._ahead(state, asks))
        except BaseException:
            self._lock.release()
            raise
        task.add_done_callback(lambda _: self._lock.release())
        return task

    async def _ahead(self, state: RunState, asks: Asks | None) -> bool:
        if asks is not None:
            await asks.sent()
        return await self.listener.checkpoint(state)
