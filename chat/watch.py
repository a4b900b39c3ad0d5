"""One watch: a subscription to one answer, the same whoever writes it.

``await watch(answer_id)`` gives everything so far, then live events, ending with ``TurnFinished``:

- an answer this process is writing: the turn's own events (``Turn.subscribe``), exact;
- an answer another process is writing: its database checkpoints, polled every POLL_S and turned
  into ``TextSnapshot`` / ``TextDelta`` events, then the stored answer as ``TurnFinished``
  (``live=False``). An answer whose process died is settled on the way (its text kept).
- a finished answer: just its ``TurnFinished``.

*Departure from DESIGN.md*: following another process reads database checkpoints rather than a
Redis replay stream, which keeps Redis off the per-token path; within a process (the common case)
the watch is exact.

Transports only encode the batches (``chat.render.PageEncoder``, ``chat.sse``). Closing a watch
never stops the answer.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any

from chat import db, store
from chat.events import TextSnapshot, TurnFinished
from chat.schemas import ErrorPart, ToolCallPart
from chat.turns import Turn, running_turn, settle_orphans
from providers.events import ReasoningDelta, TextDelta

log = logging.getLogger(__name__)

POLL_S = 0.5  # following an answer another process writes: how often its checkpoints are read
# What makes an answer's first content (the SSE response holds its headers for it).
CONTENT = (TextDelta, ReasoningDelta, TextSnapshot, ToolCallPart, ErrorPart, TurnFinished)


class Watch:
    """Batches of events: first what happened so far, then what comes, until ``TurnFinished``."""

    def __init__(self, history: list[Any], queue: asyncio.Queue, close: Any) -> None:
        self._pending = history
        self._queue = queue
        self._close = close
        self.done = False

    async def next_batch(self, within: float | None = None) -> list[Any]:
        """The next events (everything queued, at least one), or [] if none came ``within`` seconds."""
        if self._pending:
            batch, self._pending = self._pending, []
        else:
            try:
                if within is None:
                    first = await self._queue.get()
                else:
                    first = await asyncio.wait_for(self._queue.get(), within)
            except TimeoutError:
                return []
            batch = [first]
            queue = self._queue
            while not queue.empty():
                batch.append(queue.get_nowait())
        if any(type(e) is TurnFinished for e in batch):
            self.done = True
        return batch

    async def until_content(self, at_most: float) -> list[Any]:
        """Events up to the answer's first content (or its end), waiting ``at_most`` seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + at_most
        events: list[Any] = []
        while not self.done and not any(isinstance(e, CONTENT) for e in events):
            left = deadline - loop.time()
            if left <= 0:
                break
            batch = await self.next_batch(left)
            if not batch:
                break
            events += batch
        while not self.done and not self._queue.empty():
            events += await self.next_batch()
        return events

    async def finished(self) -> TurnFinished:
        """Wait for the end."""
        async for batch in self:
            for event in batch:
                if type(event) is TurnFinished:
                    return event
        raise RuntimeError("a watch ended without TurnFinished")  # pragma: no cover - by construction

    async def __aiter__(self) -> AsyncIterator[list[Any]]:
        while not self.done:
            yield await self.next_batch()

    def close(self) -> None:
        self._close()

    async def __aenter__(self) -> Watch:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        self.close()


async def watch(answer_id: uuid.UUID, turn: Turn | None = None, *, resume: bool = False) -> Watch:
    """Watch the answer ``answer_id`` (``turn``: its Turn, if the caller has it).

    ``resume``: the viewer already shows the answer as it was stored (a reloaded page), so the
    text so far comes as one ``TextSnapshot`` that replaces it, not as deltas to append.
    """
    turn = turn or running_turn(answer_id)
    if turn is not None:
        history, queue = turn.subscribe()  # before any await: nothing can slip in between
        if resume:
            history = _as_snapshot(history)
        return Watch(history, queue, lambda: turn.unsubscribe(queue))
    queue = asyncio.Queue()
    follower = asyncio.create_task(_follow(answer_id, queue), name=f"follow-{answer_id}")
    return Watch([], queue, follower.cancel)


def _as_snapshot(history: list[Any]) -> list[Any]:
    """The text so far in one piece first, then the other events in their order."""
    pieces: list[str] = []
    for event in history:
        if type(event) is TextDelta:
            pieces.append(event.text)
        elif type(event) is TextSnapshot:  # a continued answer starts from the text it continues
            pieces = [event.text]
    text = "".join(pieces)
    rest = [e for e in history if type(e) is not TextDelta and type(e) is not TextSnapshot]
    return [TextSnapshot(text), *rest] if text else rest


async def _follow(answer_id: uuid.UUID, queue: asyncio.Queue) -> None:
    """An answer another process writes (or a finished one): relay its checkpoints, then the end."""
    sent: str | None = None
    try:
        while True:
            state = await db.run(store.answer_state, answer_id)
            if state is not None and state.stale:
                await db.run(settle_orphans, message_id=answer_id)  # its process died: settle it
                continue
            if state is None or not state.streaming:
                queue.put_nowait(await db.run(store.finished_event, answer_id))
                return
            content = state.content
            if content != sent and (content or sent):
                if sent is not None and content.startswith(sent):
                    queue.put_nowait(TextDelta(content[len(sent) :]))
                else:  # the first look, or the answer restarted on another provider
                    queue.put_nowait(TextSnapshot(content))
                sent = content
            await asyncio.sleep(POLL_S)
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # the watcher must still see an end
        log.exception("following answer %s failed", answer_id)
        queue.put_nowait(
            TurnFinished(
                message_id=str(answer_id),
                conversation_id="",
                status="error",
                content="",
                metadata={},
                error=f"Following the answer failed ({type(exc).__name__}); reload to see it.",
                live=False,
                gone=True,
            )
        )
