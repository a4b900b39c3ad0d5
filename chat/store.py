"""The turn store: every row a turn reads or writes, and nothing else.

Functions here are synchronous database code; the turn calls them on the database threads
(``chat.db.run``), one hop each, and gets plain records back:

- ``prepare``: the rate limit, then one transaction: the branch read, the user message and the
  assistant placeholder (``streaming``) written, the conversation's active leaf moved (a new
  conversation: one statement, its rows and messages together). The user's message is committed
  before any provider is called (house rule 3).
- ``checkpoint``: the text so far, at most once per CHIMERA_CHECKPOINT_MS, off the token path.
- ``finish``: the final message, one usage row per provider attempt, the conversation's timestamp.
- ``touch`` / ``settle_orphans``: the heartbeat of running answers, and settling the answers of a
  process that died (their text kept).
- ``answer_state`` / ``finished_event``: what a watcher in another process reads.
"""

from __future__ import annotations

import dataclasses
import logging
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, cast

from django.conf import settings
from django.core.cache import cache
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from chat import tree
from chat.access import conversation_for, message_for
from chat.errors import NotFound, RateLimited, TurnError
from chat.events import Siblings, TurnFinished
from chat.models import Conversation, Message
from chat.request import Mode, TurnRequest
from chat.text import storable, storable_data
from chimera import rows
from providers.base import ChatMessage, Role
from usage import limits, recording
from usage.models import RateLimitRefusal

log = logging.getLogger(__name__)

# A text the orphan sweep leaves on an answer whose process died, as its (retryable) error part.
ORPHANED = (
    "The server writing this answer stopped before it finished. What arrived is saved: continue it, "
    "or try again."
)


def orphan_after() -> timedelta:
    """A `streaming` answer untouched for this long (three heartbeats) belongs to a process that died."""
    return timedelta(seconds=3 * settings.CHIMERA_HEARTBEAT_S)


STOP_KEY = "chimera:stop:{}"


@dataclass(frozen=True, slots=True)
class PreparedTurn:
    """What ``prepare`` wrote, and what the turn needs to run without reading it back."""

    answer_id: uuid.UUID
    conversation_id: uuid.UUID
    user_message_id: uuid.UUID
    branch: tuple[ChatMessage, ...]  # the conversation up to the new message, oldest first
    created: bool  # the conversation was created by this turn
    title: str
    siblings: Siblings  # the answer among the answers to the same message
    # extend: the answer's text so far (continued, not repeated) and its stored parts but errors
    partial: str = ""
    kept_parts: tuple[dict[str, Any], ...] = ()
    quota: limits.Quota | None = None  # where the person stands in their rate limit (X-RateLimit-*)


@dataclass(frozen=True, slots=True)
class FinalAnswer:
    """Everything ``finish`` writes."""

    answer_id: uuid.UUID
    conversation_id: uuid.UUID
    user_id: Any
    tier: str
    trace_id: str
    content: str
    status: str
    metadata: dict[str, Any]
    data_parts: list[dict[str, Any]]
    tool_invocations: list[dict[str, Any]]
    priced: list[recording.PricedAttempt]
    user_tier: str = ""  # the account's plan, for the usage rows ("": looked up)


@dataclass(frozen=True, slots=True)
class AnswerState:
    content: str
    streaming: bool
    stale: bool  # streaming, but untouched for orphan_after(): its process died


# ---- starting a turn ---------------------------------------------------------------------------
def prepare(request: TurnRequest, windows: tuple[limits.Window, ...] | None) -> PreparedTurn:
    """Count the message in the person's rate-limit ``windows`` (None: no limit), then write."""
    quota = count_against(request.user, windows)
    if request.mode is Mode.NEW:
        # Nothing to read or lock: the conversation and its messages go in as one statement, atomic by
        # itself (rows.insert_together), without the two round trips of a transaction of its own.
        return dataclasses.replace(_prepare(request), quota=quota)
    with transaction.atomic():
        return dataclasses.replace(_prepare(request), quota=quota)


def count_against(user, windows: tuple[limits.Window, ...] | None) -> limits.Quota | None:
    """One more message in each window: where the person stands, or RateLimited (or, while the
    counters' store is down and CHIMERA_RATE_LIMIT_WHEN_DOWN is "closed", a 503 TurnError)."""
    if windows is None:
        return None
    try:
        retry_after, quota = limits.check_sync(user, windows)
    except limits.LimitsUnavailable:
        raise TurnError(
            "rate_limit_unavailable",
            "Messages cannot be counted against your limit right now, so they are paused. "
            "What you wrote is not lost; try again in a minute.",
            503,
        ) from None
    if retry_after:
        record_refusal(user)
        raise RateLimited(retry_after, quota)
    return quota


def record_refusal(user) -> None:
    """A message the rate limit refused, counted per person and hour for the dashboard."""
    hour = timezone.now().replace(minute=0, second=0, microsecond=0)
    tier = getattr(user, "tier", "free")
    try:
        updated = RateLimitRefusal.objects.filter(user=user, hour=hour).update(count=F("count") + 1)
        if not updated:
            RateLimitRefusal.objects.get_or_create(user=user, hour=hour, defaults={"tier": tier, "count": 1})
    except Exception:  # counting refusals must never turn a 429 into a 500
        log.warning("could not count a rate-limit refusal", exc_info=True)


def _prepare(request: TurnRequest) -> PreparedTurn:
    user = request.user
    if request.mode is Mode.EXTEND:
        return _prepare_extend(request)
    answer_id = uuid.uuid4()
    siblings = Siblings()
    user_message: Message | None = None
    if request.mode is Mode.NEW:
        first = next((text for role, text in request.history if role == Message.Role.USER), request.content)
        conversation = Conversation(
            id=request.conversation_id or uuid.uuid4(),
            user=user,
            title=title_from(first),
            active_leaf_id=answer_id,  # the answer below; saves an UPDATE on the way to the provider
            settings={"tier": request.options.tier},  # the page picks it again for this conversation
        )
        # Earlier messages a client sent for a conversation we had not seen (API clients keep
        # their own history): stored as one chain the new message continues.
        path = _history(conversation, request.history)
        parent = path[-1].id if path else None
    elif request.mode is Mode.CONTINUE:
        conversation = conversation_for(user, request.conversation_id)
        _claim(conversation)
        parent = conversation.active_leaf_id
        path = _branch(conversation, parent)
    else:
        target = message_for(user, request.target_id, request.conversation_id)
        conversation = conversation_for(user, target.conversation_id)
        _claim(conversation)
        if request.mode is Mode.EDIT:
            if target.role != Message.Role.USER:
                raise NotFound("There is no message of yours with that id to edit.")
            parent = target.parent_message_id
            path = _branch(conversation, parent)
        else:
            if target.role != Message.Role.ASSISTANT or target.parent_message_id is None:
                raise NotFound("There is no answer with that id to regenerate.")
            user_message_id = target.parent_message_id
            path = _branch(conversation, user_message_id)
            earlier = list(
                Message.objects.filter(parent_message_id=target.parent_message_id)
                .order_by("created_at")
                .values_list("id", flat=True)
            )
            siblings = Siblings(len(earlier) + 1, len(earlier) + 1, earlier[-1] if earlier else None)
    if request.mode is not Mode.REGENERATE:
        user_message = Message(
            conversation=conversation,
            parent_message_id=parent,
            role=Message.Role.USER,
            content=request.content,
            status=Message.Status.COMPLETE,
            is_edited=request.mode is Mode.EDIT,
            data_parts=list(request.data_parts) or None,
        )
        path.append(user_message)
        user_message_id = user_message.id
    answer = Message(
        id=answer_id,
        conversation=conversation,
        parent_message_id=user_message_id,
        role=Message.Role.ASSISTANT,
        content="",
        status=Message.Status.STREAMING,
        metadata={"tier": request.options.tier},
    )
    if request.mode is Mode.NEW:
        rows.insert_together([conversation], [*path, answer])  # path: the history and the user's message
    else:
        rows.insert([m for m in (user_message, answer) if m is not None])
        changes: dict[str, Any] = {"active_leaf": answer_id, "updated_at": timezone.now()}
        if (conversation.settings or {}).get("tier") != request.options.tier:
            changes["settings"] = {**(conversation.settings or {}), "tier": request.options.tier}
        rows.update(Conversation, conversation.pk, changes)
    return PreparedTurn(
        answer_id=answer_id,
        conversation_id=conversation.id,
        user_message_id=user_message_id,
        branch=_said(path),
        created=request.mode is Mode.NEW,
        title=conversation.title,
        siblings=siblings,
    )


def _prepare_extend(request: TurnRequest) -> PreparedTurn:
    """An answer cut short, reopened (`streaming`) to be continued in place: no new rows."""
    target = message_for(request.user, request.target_id, request.conversation_id)
    conversation = conversation_for(request.user, target.conversation_id)
    _claim(conversation)
    target.refresh_from_db()  # under the lock
    if (
        target.role != Message.Role.ASSISTANT
        or target.status != Message.Status.INCOMPLETE
        or not target.content.strip()
        or target.parent_message_id is None
    ):
        raise TurnError(
            "not_continuable",
            "Only an answer that was cut short (incomplete, with some text) can be continued; "
            "regenerate it instead.",
            409,
        )
    path = _branch(conversation, target.parent_message_id)
    Message.objects.filter(pk=target.pk).update(status=Message.Status.STREAMING, updated_at=timezone.now())
    Conversation.objects.filter(pk=conversation.pk).update(active_leaf=target.pk, updated_at=timezone.now())
    return PreparedTurn(
        answer_id=target.id,
        conversation_id=conversation.id,
        user_message_id=target.parent_message_id,
        branch=_said(path),
        created=False,
        title=conversation.title,
        siblings=_siblings(target),
        partial=target.content,
        kept_parts=tuple(
            p
            for p in (target.data_parts or [])
            if isinstance(p, dict) and p.get("type") not in ("error", "thinking")
        ),
    )


def _said(path: list[Message]) -> tuple[ChatMessage, ...]:
    """A branch as the provider is sent it: a failed answer and an empty message are not part of
    what was said."""
    return tuple(
        ChatMessage(role=cast(Role, m.role), content=m.content)
        for m in path
        if m.content and not (m.role == Message.Role.ASSISTANT and m.status == Message.Status.ERROR)
    )


def _claim(conversation: Conversation) -> None:
    """One answer at a time per conversation: a turn started while another is still being written
    would attach to the same parent and fork the tree unseen (each answer blind to the other).
    The conversation row is locked until the new answer's row is committed, so of two parallel
    sends exactly one starts and the other gets a 409 (SQLite: its writers are serialised by
    BEGIN IMMEDIATE, settings.py). An answer whose process died (untouched for orphan_after()) does
    not count."""
    Conversation.objects.select_for_update().filter(pk=conversation.pk).values_list("pk").first()
    if Message.objects.filter(
        conversation_id=conversation.pk,
        status=Message.Status.STREAMING,
        updated_at__gte=timezone.now() - orphan_after(),
    ).exists():
        raise TurnError(
            "conversation_busy",
            "An answer in this conversation is still being written. "
            "Wait for it to finish (or stop it), then send again.",
            409,
        )


def _history(conversation: Conversation, history: tuple[tuple[str, str], ...]) -> list[Message]:
    """A client-held history as the chain of messages (not saved yet) the new message continues."""
    parent = None
    earlier: list[Message] = []
    for role, text in history:
        earlier.append(
            Message(
                conversation=conversation,
                parent_message_id=parent,
                role=role,
                content=text,
                status=Message.Status.COMPLETE,
            )
        )
        parent = earlier[-1].id
    return earlier


def _branch(conversation: Conversation, leaf_id: uuid.UUID | None) -> list[Message]:
    """The path from the root to ``leaf_id`` (inclusive), oldest first."""
    if leaf_id is None:
        return []
    rows = {
        m.id: m
        for m in Message.objects.filter(conversation=conversation).only(
            "id", "parent_message_id", "role", "content", "status", "created_at"
        )
    }
    return tree.path_to(rows, leaf_id)


def title_from(content: str) -> str:
    line = " ".join(content.split())
    return line if len(line) <= 60 else line[:57].rstrip() + "…"


# ---- while it runs, and at the end ------------------------------------------------------------
def checkpoint(answer_id: uuid.UUID, text: str, pending_usage: dict[str, Any] | None = None) -> bool:
    """Write the text so far and the attempts so far (``{"trace_id", "attempts": [attempt_json]}``);
    True when another process asked for this answer to stop."""
    Message.objects.filter(pk=answer_id, status=Message.Status.STREAMING).update(
        content=storable(text), pending_usage=pending_usage, updated_at=timezone.now()
    )
    if not settings.REDIS_URL:
        return False
    try:
        return bool(cache.get(STOP_KEY.format(answer_id)))
    except Exception:  # Redis unreachable: a Stop from another process waits for it (same process: at once)
        return False


def finish(answer: FinalAnswer) -> None:
    with transaction.atomic():
        now = timezone.now()
        # Models and tools write what they like; a NUL or an unpaired surrogate must not lose the answer.
        rows.update(
            Message,
            answer.answer_id,
            {
                "content": storable(answer.content),
                "status": answer.status,
                "metadata": storable_data(answer.metadata),
                "data_parts": storable_data(answer.data_parts) or None,
                "tool_invocations": storable_data(answer.tool_invocations) or None,
                "pending_usage": None,
                "updated_at": now,
            },
        )
        recording.record_attempts(
            user_id=answer.user_id,
            message_id=answer.answer_id,
            conversation_id=answer.conversation_id,
            tier=answer.tier,
            user_tier=answer.user_tier or None,
            trace_id=answer.trace_id,
            priced=answer.priced,
        )
        rows.update(Conversation, answer.conversation_id, {"updated_at": now})


def request_stop(user, answer_id: uuid.UUID) -> bool:
    """Ask whichever process writes this answer to stop (it looks at every checkpoint)."""
    owned = Message.objects.filter(
        pk=answer_id, conversation__user=user, status=Message.Status.STREAMING
    ).exists()
    if owned:
        try:
            cache.set(STOP_KEY.format(answer_id), 1, 600)
        except Exception:  # Redis unreachable: the process writing the answer cannot be told
            raise TurnError(
                "stop_unavailable",
                "Stop could not reach the server writing this answer just now; try again in a moment.",
                503,
            ) from None
    return owned


def touch(answer_ids: list[uuid.UUID]) -> None:
    """The heartbeat: these answers are still being written."""
    Message.objects.filter(pk__in=answer_ids, status=Message.Status.STREAMING).update(
        updated_at=timezone.now()
    )


def settle_orphans(*, conversation_id=None, message_id=None, exclude=()) -> int:
    """Streaming answers no process has touched for ``orphan_after()``: their process died (a
    restart, a crash, a SIGKILL). Each is settled with what its last checkpoint holds: the text
    (`incomplete`, or `error` when there was none), a retryable error part saying what happened,
    and one usage row per provider attempt it had made (the one in flight billed as it stood,
    its counts marked estimated where they are). Safe to run in many processes at once: each
    answer is settled by one of them (row locks; SQLite serialises writers), and the usage rows'
    ids are the ones its own final write would have used. Returns how many were settled."""
    stale = Message.objects.filter(
        status=Message.Status.STREAMING, updated_at__lt=timezone.now() - orphan_after()
    ).exclude(pk__in=list(exclude))
    if conversation_id is not None:
        stale = stale.filter(conversation_id=conversation_id)
    if message_id is not None:
        stale = stale.filter(pk=message_id)
    settled = 0
    for answer_id in list(stale.values_list("pk", flat=True)[:100]):
        with transaction.atomic():
            lock = stale.filter(pk=answer_id).select_for_update(
                skip_locked=connection.features.has_select_for_update_skip_locked, of=("self",)
            )
            message = lock.select_related("conversation").first()
            if message is None:  # another process settled it meanwhile
                continue
            _settle(message)
            settled += 1
    return settled


def _settle(message: Message) -> None:
    pending = message.pending_usage if isinstance(message.pending_usage, dict) else {}
    attempts = []
    for entry in pending.get("attempts") or []:
        try:
            attempts.append(recording.attempt_from_json(entry))
        except (KeyError, TypeError, ValueError):  # a hand-edited row must not stop the sweep
            continue
    priced = recording.price(attempts)
    recording.record_attempts(
        user_id=message.conversation.user_id,
        message_id=message.pk,
        conversation_id=message.conversation_id,
        tier=str((message.metadata or {}).get("tier") or ""),  # the placeholder's metadata has it
        trace_id=str(pending.get("trace_id") or "")[:64],  # the turn's: the ids its final write uses
        priced=priced,
    )
    parts = [p for p in (message.data_parts or []) if isinstance(p, dict)]
    parts.append({"type": "error", "error": ORPHANED, "retryable": True, "provider": None})
    metadata = dict(message.metadata or {})
    if attempts:
        last = attempts[-1]
        metadata |= {
            "modelUsed": f"{last.provider}/{last.model}",
            "provider": last.provider,
            "inputTokens": sum(a.usage.input_tokens for a in attempts),
            "outputTokens": sum(a.usage.output_tokens for a in attempts),
            "tokenCount": sum(a.usage.input_tokens + a.usage.output_tokens for a in attempts),
            "cost": str(total) if (total := recording.total_cost(priced)) is not None else None,
        }
    Message.objects.filter(pk=message.pk).update(
        status=Message.Status.INCOMPLETE if message.content else Message.Status.ERROR,
        data_parts=parts,
        metadata=metadata or None,
        pending_usage=None,
        updated_at=timezone.now(),
    )


# ---- what a watcher in another process reads ----------------------------------------------------
def answer_state(answer_id: uuid.UUID) -> AnswerState | None:
    row = Message.objects.filter(pk=answer_id).values("content", "status", "updated_at").first()
    if row is None:
        return None
    streaming = row["status"] == Message.Status.STREAMING
    return AnswerState(
        content=row["content"],
        streaming=streaming,
        stale=streaming and row["updated_at"] < timezone.now() - orphan_after(),
    )


def finished_event(answer_id: uuid.UUID) -> TurnFinished:
    """A stored answer as the last event of a watch (its parts not streamed: ``live=False``)."""
    message = Message.objects.filter(pk=answer_id).first()
    if message is None:
        return TurnFinished(
            message_id=str(answer_id),
            conversation_id="",
            status=Message.Status.ERROR,
            content="",
            metadata={},
            error="The answer was deleted.",
            live=False,
            gone=True,
        )
    parts = message.data_parts or []
    return TurnFinished(
        message_id=str(message.id),
        conversation_id=str(message.conversation_id),
        status=message.status,
        content=message.content,
        metadata=message.metadata or {},
        data_parts=parts,
        error=next((p.get("error", "") for p in parts if p.get("type") == "error"), ""),
        siblings=_siblings(message),
        is_edited=message.is_edited,
        live=False,
    )


def _siblings(message: Message) -> Siblings:
    ids = list(
        Message.objects.filter(
            conversation_id=message.conversation_id, parent_message_id=message.parent_message_id
        )
        .order_by("created_at")
        .values_list("id", flat=True)
    )
    i = ids.index(message.id)
    return Siblings(i + 1, len(ids), ids[i - 1] if i else None, ids[i + 1] if i + 1 < len(ids) else None)


# ---- what an API request names (the AI SDK's chat ids and triggers) -------------------------------
def conversation_owner(conversation_id: uuid.UUID):
    return Conversation.objects.filter(pk=conversation_id).values_list("user_id", flat=True).first()


def answer_to_regenerate(conversation_id: uuid.UUID, answer_id: uuid.UUID | None) -> uuid.UUID | None:
    """``answer_id`` if it is an answer in the conversation (else None); with no id, the answer at
    the conversation's active leaf."""
    answers = Message.objects.filter(conversation_id=conversation_id, role=Message.Role.ASSISTANT)
    if answer_id is not None:
        return answer_id if answers.filter(pk=answer_id).exists() else None
    leaf = Conversation.objects.filter(pk=conversation_id).values_list("active_leaf_id", flat=True).first()
    if leaf is not None and answers.filter(pk=leaf).exists():
        return leaf
    return None


def is_user_message(conversation_id: uuid.UUID, message_id: uuid.UUID) -> bool:
    return Message.objects.filter(
        pk=message_id, conversation_id=conversation_id, role=Message.Role.USER
    ).exists()
