"""Titles: after a conversation's first answer, the fast tier is asked for a short title.

Until then (and for good when no provider answers, or the model's title is unusable, as the small
local model's often is) the title is the first words of the first message (``store.title_from``).
The title is written only if the person has not renamed the conversation meanwhile.

It runs as a background task of the process that ran the turn, not as a Celery task: that process
holds the router and the page socket that shows the title live, and it works the same under `make
run` (no worker), the Procfile and several web processes. Its provider attempts are recorded as
usage rows like any other (no message id: the conversation's).
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import re
import uuid

from django.conf import settings

from chat import db
from chat.models import Conversation
from flags.runtime import aget_flags
from providers.base import ChatMessage
from providers.events import AttemptFinished, TextDelta
from providers.router import get_router
from usage import recording

log = logging.getLogger(__name__)

PROMPT = (
    "Give this conversation a title of at most six words. Answer with the title only: no quotes, "
    "no punctuation at the end.\n\nThe first message:\n{question}\n\nThe answer began:\n{answer}"
)
MAX_CHARS = 80
_pending: dict[uuid.UUID, asyncio.Task] = {}


def start(*, conversation_id: uuid.UUID, user_id, question: str, answer: str, fallback: str) -> None:
    """Ask for a title in the background (``wait`` gives it to whoever shows the conversation)."""
    if not settings.CHIMERA_AUTO_TITLES:
        return
    task = asyncio.create_task(
        _title(conversation_id, user_id, question, answer, fallback),
        name=f"title-{conversation_id}",
        context=contextvars.Context(),
    )
    _pending[conversation_id] = task
    task.add_done_callback(lambda _t: _pending.pop(conversation_id, None))


async def wait(conversation_id: uuid.UUID) -> str | None:
    """The new title, once it is saved; None when there is none coming. (Callers bound the wait.)"""
    task = _pending.get(conversation_id)
    if task is None:
        return None
    try:
        return await asyncio.shield(task)
    except Exception:
        return None


async def all_done() -> None:
    """Wait for the titles still being made (a clean shutdown, and tests)."""
    while _pending:
        await asyncio.gather(*list(_pending.values()), return_exceptions=True)


def clean(text: str) -> str | None:
    """A usable title from what the model wrote, or None."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    if not lines:
        return None
    title = re.sub(r"^(title\s*:\s*)", "", lines[0], flags=re.I)
    title = title.strip(" \t\"'`*#_.:;-").strip()
    title = " ".join(title.split())
    if not title or len(title) > MAX_CHARS or len(title.split()) > 12 or not re.search(r"\w", title):
        return None
    return title


async def _title(conversation_id, user_id, question: str, answer: str, fallback: str) -> str | None:
    prompt = PROMPT.format(question=question[:2000], answer=answer[:1000])
    trace_id = uuid.uuid4().hex
    text: list[str] = []
    attempts: list[AttemptFinished] = []
    try:
        async for event in get_router().stream(
            tier="fast",
            messages=(ChatMessage("user", prompt),),
            flags=await aget_flags(),
            temperature=0.2,
            max_tokens=24,
            trace_id=trace_id,
        ):
            if type(event) is TextDelta:
                text.append(event.text)
            elif type(event) is AttemptFinished:
                attempts.append(event)
    except Exception:
        log.exception("asking for the title of %s failed", conversation_id)
    try:
        if attempts:
            await db.run_once(
                recording.record_attempts,
                user_id=user_id,
                message_id=None,
                conversation_id=conversation_id,
                tier="fast",
                trace_id=trace_id,
                priced=recording.price(attempts),
            )
        title = clean("".join(text))
        saved: bool = bool(title) and await db.run(_save, conversation_id, title, fallback)
        if saved:
            return title
    except Exception:
        log.exception("saving the title of %s failed", conversation_id)
    return None


def _save(conversation_id, title: str, fallback: str) -> bool:
    """The title, unless the person renamed the conversation meanwhile."""
    return bool(Conversation.objects.filter(pk=conversation_id, title=fallback).update(title=title))
