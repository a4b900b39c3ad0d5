"""The turn service: one user message and the assistant answer generated for it.

A turn runs as an asyncio task detached from any transport: a closed tab or a
dropped socket never stops or loses it; an explicit stop does, keeping the
partial text. Transports (the WebSocket consumer, the SSE endpoint) subscribe
to a turn and get everything so far, then live events.

Order of work, and why:
1. Validate, rate-limit, then in ONE thread hop and one transaction: load the
   branch, insert the user message and the assistant placeholder (`streaming`),
   move the conversation's active leaf. The user's message is committed before
   any provider is called (house rule 3). DESIGN.md would start the provider
   call before these writes finish; we keep them before it because the rule is
   stronger, and they cost ~2 ms (one round trip per statement, no per-turn
   ORM churn beyond that).
2. The provider stream runs; text is kept in memory and checkpointed to the
   database every CHIMERA_CHECKPOINT_MS at most, off the token path.
3. At the end, in one thread hop: the final message row, one usage row per
   provider attempt, the conversation's timestamp.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from chat import db, tree
from chat.models import Conversation, Message
from flags.runtime import aget_flags
from providers.base import ChatMessage
from providers.events import AttemptFinished, Event, StreamError, Usage
from usage import limits, recording

log = logging.getLogger(__name__)

TIERS = ("fast", "balanced", "powerful", "reasoning")
# A `streaming` message not checkpointed for this long belongs to a process that died.
# Every process touches its running answers every HEARTBEAT_S, so this can stay short.
ORPHAN_AFTER = timedelta(seconds=60)
HEARTBEAT_S = 10.0
# Conversation history sent to the provider, newest kept first (characters; a coarse token guard).
HISTORY_CHAR_BUDGET = 120_000
STOP_KEY = "chimera:stop:{}"


class TurnError(Exception):
    """A turn that cannot start; carries an HTTP-like status and a message a person understands."""

    def __init__(self, code: str, message: str, status: int = 400, field: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
        self.field = field


class RateLimited(TurnError):
    def __init__(self, retry_after: int) -> None:
        super().__init__(
            "rate_limited",
            f"You have sent too many messages. Please try again in {retry_after} seconds.",
            429,
        )
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class TurnOptions:
    tier: str = "balanced"
    temperature: float = 0.7
    max_tokens: int = 1000
    include_history: bool = True
    system: str = ""
    tools: tuple[dict[str, Any], ...] = ()


@dataclass(frozen=True, slots=True)
class TurnFinished:
    """The last event of every turn, after the message row is final."""

    status: str
    message_id: str
    content: str
    metadata: dict[str, Any]
    error: str = ""
    kind: str = "turn-finished"


@dataclass(slots=True)
class Turn:
    id: uuid.UUID  # the assistant message id
    conversation_id: uuid.UUID
    user_message_id: uuid.UUID
    user_id: Any
    options: TurnOptions
    history: tuple[ChatMessage, ...]
    trace_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    created: bool = False  # the conversation was created by this turn
    use_cache: bool = True  # a regenerated answer must be a new one, not the cached one
    user_content: str = ""
    title: str = ""
    # The answer's place among its siblings (index, count, previous sibling id): lets transports
    # render the message without reading the tree back.
    siblings: tuple[int, int, Any] = (1, 1, None)
    text_parts: list[str] = field(default_factory=list)
    reasoning_parts: list[str] = field(default_factory=list)
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    data_parts: list[dict[str, Any]] = field(default_factory=list)
    switches: list[dict[str, Any]] = field(default_factory=list)
    attempts: list[AttemptFinished] = field(default_factory=list)
    events: list[Any] = field(default_factory=list)
    subscribers: set[asyncio.Queue] = field(default_factory=set)
    provider: str = ""
    model: str = ""
    finish_reason: str | None = None
    error: StreamError | None = None
    stopped: bool = False
    status: str = Message.Status.STREAMING
    started_at: float = field(default_factory=time.monotonic)
    started_wall: datetime = field(default_factory=lambda: datetime.now(UTC))
    ttft_ms: int | None = None
    finished: TurnFinished | None = None
    task: asyncio.Task | None = None
    _last_checkpoint: float = 0.0
    _checkpoint_task: asyncio.Task | None = None
    _checkpointed_len: int = 0

    # ---- subscribers -------------------------------------------------------------
    def subscribe(self) -> tuple[list[Any], asyncio.Queue]:
        """Everything so far and a queue of what comes next (atomic: no await in between)."""
        queue: asyncio.Queue = asyncio.Queue()
        self.subscribers.add(queue)
        return list(self.events), queue

    def unsubscribe(self, queue: asyncio.Queue) -> None:
        self.subscribers.discard(queue)

    def _publish(self, event: Any) -> None:
        self.events.append(event)
        for queue in self.subscribers:
            queue.put_nowait(event)

    @property
    def text(self) -> str:
        return "".join(self.text_parts)

    # ---- the run -----------------------------------------------------------------
    async def run(self) -> None:
        from providers.router import get_router

        checkpoint_s = settings.CHIMERA_CHECKPOINT_MS / 1000
        self._last_checkpoint = self.started_at
        publish = self._publish
        try:
            stream = get_router().stream(
                tier=self.options.tier,
                messages=self.history,
                temperature=self.options.temperature,
                max_tokens=self.options.max_tokens,
                tools=self.options.tools,
                reasoning=self.options.tier == "reasoning",
                trace_id=self.trace_id,
                use_cache=self.use_cache,
            )
            try:
                async for event in stream:
                    kind = event.kind
                    if kind == "text":
                        self.text_parts.append(event.text)
                        if self.ttft_ms is None:
                            self.ttft_ms = int((time.monotonic() - self.started_at) * 1000)
                        publish(event)
                        now = time.monotonic()
                        if now - self._last_checkpoint >= checkpoint_s:
                            self._checkpoint(now)
                        continue
                    self._absorb(event)
                    publish(event)
            finally:
                await stream.aclose()
        except asyncio.CancelledError:
            self.stopped = True
            raise
        except Exception as exc:  # a bug must still leave the partial answer saved
            log.exception("turn %s failed", self.id)
            self.error = StreamError(
                message="Something went wrong while answering. Your message is saved; try again."
            )
            self._publish(self.error)
            del exc
        finally:
            await asyncio.shield(self._finish())

    def _absorb(self, event: Event) -> None:
        kind = event.kind
        if kind == "reasoning":
            self.reasoning_parts.append(event.text)
        elif kind == "attempt-started":
            self.provider, self.model = event.provider, event.model
        elif kind == "attempt-finished":
            self.attempts.append(event)
            if not event.error:
                self.provider, self.model = event.provider, event.model
        elif kind == "provider-switched":
            switch = {
                "fromProvider": event.from_provider,
                "toProvider": event.to_provider,
                "model": event.model,
                "mode": event.mode,
                "reason": event.reason,
            }
            self.switches.append(switch)
            self.data_parts.append({"type": "provider-switch", **switch})
            self.provider, self.model = event.to_provider, event.model
            if event.mode == "restart":
                self.text_parts.clear()
        elif kind == "tool-call":
            self.tool_calls.append({"id": event.id, "toolName": event.name, "args": event.args})
            self.data_parts.append(
                {"type": "tool-call", "toolName": event.name, "args": event.args, "status": "pending"}
            )
        elif kind == "finish":
            self.finish_reason = event.reason
        elif kind == "error":
            self.error = event

    def _checkpoint(self, now: float) -> None:
        if self._checkpoint_task is not None and not self._checkpoint_task.done():
            return
        self._last_checkpoint = now
        self._checkpoint_task = asyncio.create_task(self._write_checkpoint())

    async def _write_checkpoint(self) -> None:
        text = self.text
        if len(text) == self._checkpointed_len:
            return
        try:
            if await db.run(self._checkpoint_sync, text):
                # Stop asked for from another process.
                if self.task is not None:
                    self.task.cancel()
            self._checkpointed_len = len(text)
        except Exception:
            log.exception("checkpoint of %s failed; the final write will carry the text", self.id)

    async def _finish(self) -> None:
        if self._checkpoint_task is not None and not self._checkpoint_task.done():
            await asyncio.wait([self._checkpoint_task])
        text = self.text
        if self.finish_reason is not None and self.error is None and not self.stopped:
            self.status = Message.Status.COMPLETE
        elif text:
            self.status = Message.Status.INCOMPLETE
        else:
            self.status = Message.Status.ERROR
        if (
            self.stopped
            and self.provider
            and not any(a.provider == self.provider and not a.error for a in self.attempts)
        ):
            # The router was cancelled mid-attempt: record the attempt ourselves (tokens estimated).
            self.attempts.append(
                AttemptFinished(
                    provider=self.provider,
                    model=self.model,
                    usage=Usage(output_tokens=max(1, len(text) // 4) if text else 0),
                    latency_ms=int((time.monotonic() - self.started_at) * 1000),
                    ttft_ms=self.ttft_ms,
                    error="stopped by the user",
                )
            )
        if self.reasoning_parts:
            self.data_parts.insert(0, {"type": "thinking", "content": "".join(self.reasoning_parts)})
        metadata = self._metadata()
        error_text = self.error.message if self.error else ("Stopped." if self.stopped else "")
        if self.error is not None:
            self.data_parts.append(
                {
                    "type": "error",
                    "error": self.error.message,
                    "retryable": self.error.retryable,
                    "provider": self.error.provider,
                }
            )
        try:
            await db.run(self._finish_sync, text, metadata)
        except Exception:
            log.exception("final write of turn %s failed", self.id)
        self.finished = TurnFinished(
            status=self.status, message_id=str(self.id), content=text, metadata=metadata, error=error_text
        )
        self._publish(self.finished)
        _running.pop(self.id, None)

    def _metadata(self) -> dict[str, Any]:
        input_tokens = output_tokens = reasoning_tokens = 0
        cost: Decimal | None = Decimal("0")
        cache_hit = False
        for attempt in self.attempts:
            usage = attempt.usage
            input_tokens += usage.input_tokens
            output_tokens += usage.output_tokens
            reasoning_tokens += usage.reasoning_tokens
            cache_hit = cache_hit or attempt.cache_hit
            attempt_cost = recording.attempt_cost(attempt)
            if attempt_cost is None:
                cost = None
            elif cost is not None:
                cost += attempt_cost
        return {
            "timestamp": timezone.now().isoformat(),
            "modelUsed": f"{self.provider}/{self.model}" if self.provider else "",
            "provider": self.provider,
            "tokenCount": input_tokens + output_tokens,
            "inputTokens": input_tokens,
            "outputTokens": output_tokens,
            "reasoningTokens": reasoning_tokens,
            # Cache hits cost nothing: the row keeps the original price as the saving.
            "cost": str(cost) if cost is not None else None,
            "latency": int((time.monotonic() - self.started_at) * 1000),
            "ttft": self.ttft_ms,
            "traceId": self.trace_id,
            "sessionId": str(self.conversation_id),
            "gatewayCache": "hit" if cache_hit else "miss",
            "tier": self.options.tier,
            "switches": self.switches,
            "finishReason": self.finish_reason,
        }

    def _checkpoint_sync(self, text: str) -> bool:
        """Write the text so far; True when another process asked for this answer to stop."""
        Message.objects.filter(pk=self.id, status=Message.Status.STREAMING).update(
            content=text, updated_at=timezone.now()
        )
        return bool(settings.REDIS_URL and cache.get(STOP_KEY.format(self.id)))

    def _finish_sync(self, text: str, metadata: dict[str, Any]) -> None:
        with transaction.atomic():
            Message.objects.filter(pk=self.id).update(
                content=text,
                status=self.status,
                metadata=metadata,
                data_parts=self.data_parts or None,
                tool_invocations=self.tool_calls or None,
                updated_at=timezone.now(),
            )
            recording.record_attempts(
                user_id=self.user_id,
                message_id=self.id,
                conversation_id=self.conversation_id,
                tier=self.options.tier,
                trace_id=self.trace_id,
                attempts=self.attempts,
            )
            Conversation.objects.filter(pk=self.conversation_id).update(updated_at=timezone.now())


# Turns running in this process, by assistant message id. Strong references keep tasks alive.
_running: dict[uuid.UUID, Turn] = {}


def running_turn(message_id: uuid.UUID) -> Turn | None:
    return _running.get(message_id)


# ---- starting turns ------------------------------------------------------------------


def validate_content(content: Any) -> str:
    if not isinstance(content, str) or not content.strip():
        raise TurnError("empty_message", "Type a message before sending.", 400, "message")
    limit = settings.CHIMERA_MAX_MESSAGE_CHARS
    if len(content) > limit:
        raise TurnError(
            "message_too_long",
            f"That message is {len(content):,} characters; the limit is {limit:,}. Shorten it and send again.",
            413,
            "message",
        )
    return content


def validate_options(options: TurnOptions) -> TurnOptions:
    if options.tier not in TIERS:
        raise TurnError("invalid_model", f"model must be one of {', '.join(TIERS)}.", 422, "config.model")
    if not 0 <= options.temperature <= 2:
        raise TurnError(
            "invalid_temperature", "temperature must be between 0 and 2.", 422, "config.temperature"
        )
    if not 1 <= options.max_tokens <= 4000:
        raise TurnError(
            "invalid_max_tokens", "maxTokens must be between 1 and 4000.", 422, "config.maxTokens"
        )
    return options


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


def _history(path: list[Message], options: TurnOptions) -> tuple[ChatMessage, ...]:
    if not options.include_history:
        path = path[-1:]
    out: list[ChatMessage] = []
    budget = HISTORY_CHAR_BUDGET
    for message in reversed(path):
        if message.role == Message.Role.ASSISTANT and message.status == Message.Status.ERROR:
            continue
        if not message.content:
            continue
        budget -= len(message.content)
        if budget < 0 and out:
            break
        out.append(ChatMessage(role=message.role, content=message.content))
    out.reverse()
    if options.system:
        out.insert(0, ChatMessage(role="system", content=options.system))
    return tuple(out)


def get_conversation_for_user(user, conversation_id) -> Conversation:
    try:
        return Conversation.objects.get(pk=conversation_id, user=user)
    except (Conversation.DoesNotExist, ValueError, TypeError):
        raise TurnError("not_found", "That conversation does not exist.", 404) from None


def _prepare(
    user,
    content: str,
    options: TurnOptions,
    conversation_id=None,
    parent_id=None,
    edit_of=None,
    regenerate_of=None,
    new_conversation_id=None,
    seed: tuple[tuple[str, str], ...] = (),
    user_data_parts: list[dict[str, Any]] | None = None,
) -> Turn:
    """One thread hop, one transaction: everything written before any provider is called."""
    with transaction.atomic():
        created = False
        siblings: tuple[int, int, Any] = (1, 1, None)
        seeded: list[Message] = []
        seed_leaf = None
        assistant_id = uuid.uuid4()
        if conversation_id is None:
            first = next((text for role, text in seed if role == Message.Role.USER), content)
            conversation = Conversation.objects.create(
                id=new_conversation_id or uuid.uuid4(),
                user=user,
                title=_title(first),
                active_leaf_id=assistant_id,  # the answer below; saves an UPDATE on the way to the provider
            )
            created = True
            # Earlier messages a client sent for a conversation we had not seen (API clients
            # keep their own history): stored as one chain the new message continues.
            parent_seed = None
            for role, text in seed:
                seeded.append(
                    Message(
                        conversation=conversation,
                        parent_message_id=parent_seed,
                        role=role,
                        content=text,
                        status=Message.Status.COMPLETE,
                    )
                )
                parent_seed = seeded[-1].id
            if seeded:
                Message.objects.bulk_create(seeded)
            seed_leaf = parent_seed
        else:
            conversation = get_conversation_for_user(user, conversation_id)
        now = timezone.now()
        user_message: Message | None = None
        if regenerate_of is not None:
            old = Message.objects.filter(pk=regenerate_of, conversation=conversation).first()
            if old is None or old.role != Message.Role.ASSISTANT or old.parent_message_id is None:
                raise TurnError("not_found", "There is no answer with that id to regenerate.", 404)
            path = _branch(conversation, old.parent_message_id)
            user_message_id = old.parent_message_id
            earlier = list(
                Message.objects.filter(parent_message_id=user_message_id)
                .order_by("created_at")
                .values_list("id", flat=True)
            )
            siblings = (len(earlier) + 1, len(earlier) + 1, earlier[-1] if earlier else None)
        else:
            if edit_of is not None:
                old = Message.objects.filter(pk=edit_of, conversation=conversation).first()
                if old is None or old.role != Message.Role.USER:
                    raise TurnError("not_found", "There is no message of yours with that id to edit.", 404)
                parent = old.parent_message_id
            elif parent_id is not None:
                if not Message.objects.filter(pk=parent_id, conversation=conversation).exists():
                    raise TurnError(
                        "not_found", "There is no message with that id in this conversation.", 404
                    )
                parent = parent_id
            elif created:
                # active_leaf_id already names the answer below: the new message starts the tree
                # (or continues the seeded history), never hangs under its own answer.
                parent = seed_leaf
            else:
                parent = conversation.active_leaf_id
            path = _branch(conversation, parent)
            user_message = Message(
                conversation=conversation,
                parent_message_id=parent,
                role=Message.Role.USER,
                content=content,
                status=Message.Status.COMPLETE,
                is_edited=edit_of is not None,
                data_parts=user_data_parts or None,
            )
            path.append(user_message)
            user_message_id = user_message.id
        assistant = Message(
            id=assistant_id,
            conversation=conversation,
            parent_message_id=user_message_id,
            role=Message.Role.ASSISTANT,
            content="",
            status=Message.Status.STREAMING,
            metadata={"tier": options.tier},
        )
        Message.objects.bulk_create([m for m in (user_message, assistant) if m is not None])
        if not created:
            Conversation.objects.filter(pk=conversation.pk).update(active_leaf=assistant.id, updated_at=now)
    return Turn(
        id=assistant.id,
        conversation_id=conversation.id,
        user_message_id=user_message_id,
        user_id=user.pk,
        options=options,
        history=_history(path, options),
        created=created,
        use_cache=regenerate_of is None,
        user_content=content,
        siblings=siblings,
        title=conversation.title,
    )


def _limit_then_prepare(limit: int | None, user, *args) -> Turn:
    if limit is not None:
        retry_after = limits.check_sync(user, limit)
        if retry_after:
            raise RateLimited(retry_after)
    return _prepare(user, *args)


def _title(content: str) -> str:
    line = " ".join(content.split())
    return line if len(line) <= 60 else line[:57].rstrip() + "…"


async def start_turn(
    user,
    content: str | None,
    options: TurnOptions | None = None,
    *,
    conversation_id=None,
    parent_id=None,
    edit_of=None,
    regenerate_of=None,
    new_conversation_id=None,
    seed: tuple[tuple[str, str], ...] = (),
    user_data_parts: list[dict[str, Any]] | None = None,
) -> Turn:
    """Validate, rate-limit, persist, then launch the answer. Raises TurnError.

    For a new conversation (no ``conversation_id``), ``new_conversation_id`` picks its id
    and ``seed`` ((role, content) pairs, oldest first) stores earlier messages before the
    new one. ``user_data_parts`` are stored on the new user message.
    """
    options = validate_options(options or TurnOptions())
    if regenerate_of is None:
        content = validate_content(content)
    limit = limits.limit_for(user, await aget_flags())
    # One hop to the database threads: the limit, then every write before the provider call.
    turn = await db.run(
        _limit_then_prepare,
        limit,
        user,
        content or "",
        options,
        conversation_id,
        parent_id,
        edit_of,
        regenerate_of,
        new_conversation_id,
        tuple(seed),
        user_data_parts,
    )
    _running[turn.id] = turn
    # A fresh context: the turn outlives the request, so it must not inherit the request's
    # thread-sensitive executor (and its database connection).
    turn.task = asyncio.create_task(turn.run(), name=f"turn-{turn.id}", context=contextvars.Context())
    _ensure_heartbeat()
    return turn


async def stop_turn(user, message_id) -> bool:
    """Stop an answer in flight; its partial text is kept as `incomplete`."""
    turn = _running.get(message_id)
    if turn is not None:
        if turn.user_id != user.pk:
            return False
        if turn.task is not None and not turn.task.done():
            turn.task.cancel()
            try:
                await asyncio.wait_for(asyncio.shield(turn.task), timeout=10)
            except (asyncio.CancelledError, TimeoutError):
                pass
        return True
    # Another process may run it: it looks for this flag at every checkpoint.
    owned = await Message.objects.filter(
        pk=message_id, conversation__user=user, status=Message.Status.STREAMING
    ).aexists()
    if owned:
        await cache.aset(STOP_KEY.format(message_id), 1, 600)
    return owned


def mark_orphans(conversation_id=None, message_id=None) -> int:
    """Streaming answers no process has touched for ORPHAN_AFTER: their process died (a restart,
    a crash). The text so far is kept: `incomplete`, or `error` when there was none."""
    stale = Message.objects.filter(
        status=Message.Status.STREAMING, updated_at__lt=timezone.now() - ORPHAN_AFTER
    ).exclude(pk__in=list(_running))
    if conversation_id is not None:
        stale = stale.filter(conversation_id=conversation_id)
    if message_id is not None:
        stale = stale.filter(pk=message_id)
    return stale.filter(content="").update(status=Message.Status.ERROR) + stale.update(
        status=Message.Status.INCOMPLETE
    )


# ---- the heartbeat: one per process, while it runs turns ----------------------------------------
_heartbeat: dict[str, asyncio.Task] = {}


def _ensure_heartbeat() -> None:
    task = _heartbeat.get("task")
    if task is None or task.done():
        _heartbeat["task"] = asyncio.create_task(
            _beat(), name="turn-heartbeat", context=contextvars.Context()
        )


async def _beat() -> None:
    """Touch every answer this process is writing, so another process never takes one for dead."""
    while _running:
        await asyncio.sleep(HEARTBEAT_S)
        ids = list(_running)
        if not ids:
            break
        try:
            await db.run(_touch, ids)
        except Exception:
            log.exception("turn heartbeat failed")


def _touch(ids: list[uuid.UUID]) -> None:
    Message.objects.filter(pk__in=ids, status=Message.Status.STREAMING).update(updated_at=timezone.now())
