"""The run of one turn: one user message and the answer generated for it.

``start_turn(request)`` is the one front door for every transport:

1. one hop to the database threads (``_prepare``): the API key's lookup (the API's chat endpoint),
   the runtime flags for the whole turn (read again only when this process's copy is stale), the
   rate limit, then the store's user message and answer placeholder in one transaction, before any
   provider is called;
2. the answer runs as an asyncio task detached from any transport (``Turn.run``): a closed tab or a
   dropped socket never stops or loses it; an explicit stop does, keeping the partial text.

While it runs, the turn keeps the answer in memory, publishes each event to its watchers
(``chat.watch``), and checkpoints the text at most every CHIMERA_CHECKPOINT_MS, off the token path.
At the end it prices the attempts (``usage.recording``), builds the spec's ChimeraMetadata and data
parts (``chat.schemas``), has the store write them in one hop, and publishes ``TurnFinished``.

This module does no database work of its own: rows are the store's (``chat.store``).
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from django.conf import settings

from chat import db, store, titles
from chat.errors import TurnError
from chat.events import Siblings, StepFinished, TextSnapshot, TurnFinished
from chat.models import Message
from chat.request import TurnRequest
from chat.schemas import (
    ChimeraMetadata,
    ErrorPart,
    ProviderSwitchPart,
    ThinkingPart,
    ToolCallPart,
    dump_part,
)
from flags.runtime import get_flags
from knowledge.index import aindex_message
from knowledge.rag import rag_context
from providers.base import ChatMessage
from providers.catalog import direct_providers_configured
from providers.events import (
    AttemptFinished,
    AttemptStarted,
    Event,
    Finish,
    ProviderSwitched,
    ReasoningDelta,
    StreamError,
    TextDelta,
    ToolCall,
    ToolInputDelta,
    Usage,
)
from providers.router import Meter, get_router
from tools import registry as tool_registry
from tools.base import ToolContext
from usage import limits, recording

log = logging.getLogger(__name__)

# Conversation history sent to the provider, newest kept first (characters; a coarse token guard).
HISTORY_CHAR_BUDGET = 120_000
# useRAG: passages of the user's knowledge put in the prompt.
RAG_PASSAGES = 4
# A tool's output as the model reads it back, at most (characters of JSON).
TOOL_RESULT_CHARS = 16_000
INTERNAL_ERROR = "Something went wrong while answering. Your message is saved; try again."
NOT_SAVED = (
    "This answer could not be saved. What was saved of it last is kept; reload in a minute to see it, "
    "or regenerate."
)
# Pauses between tries of the final write (a database restart or failover takes seconds).
SAVE_RETRIES_S = (0.2, 1.0, 3.0, 10.0)


async def start_turn(request: TurnRequest | Callable[[], TurnRequest]) -> Turn:
    """Rate-limit, persist, then launch the answer. Raises TurnError (RateLimited, NotFound, …).

    ``request`` may be a function that makes it (sync, on the database thread): the API's chat
    endpoint looks its caller's key up in the same hop that saves the message (``chat.api.auth``).
    """
    asked, prepared, offered, flags = await db.run_once(_prepare, request)
    turn = Turn(asked, prepared, flags, tool_definitions=offered)
    _running[turn.id] = turn
    # A fresh context: the turn outlives the request, so it must not inherit the request's
    # thread-sensitive executor (and its database connection).
    turn.task = asyncio.create_task(turn.run(), name=f"turn-{turn.id}", context=contextvars.Context())
    _ensure_heartbeat()
    return turn


def _prepare(
    request: TurnRequest | Callable[[], TurnRequest],
) -> tuple[TurnRequest, store.PreparedTurn, tuple[dict[str, Any], ...], Mapping[str, Any]]:
    """Everything before the provider is called, in one database job (sync): the caller (an API
    key), the runtime flags when their copy in this process is stale, the limit, the first writes."""
    asked = request() if callable(request) else request
    flags = get_flags()
    if asked.options.tools and not direct_providers_configured():
        raise TurnError(
            "tools_unavailable",
            "The local model (embedded mode) cannot call tools. Leave config.tools out, or set a provider "
            "key (GROQ_API_KEY, GOOGLE_API_KEY or ANTHROPIC_API_KEY).",
            422,
            "config.tools",
        )
    offered = tool_registry.definitions(asked.options.tools, getattr(asked.user, "tier", "free"))
    return asked, store.prepare(asked, limits.limit_for(asked.user, flags)), offered, flags


def prompt(branch: tuple[ChatMessage, ...], request: TurnRequest) -> tuple[ChatMessage, ...]:
    """What the provider is sent: the branch within the history budget (newest first), the system prompt."""
    options = request.options
    if not options.include_history:
        branch = branch[-1:]
    kept: list[ChatMessage] = []
    budget = HISTORY_CHAR_BUDGET - len(options.system)  # the system prompt counts against it too
    for message in reversed(branch):
        budget -= len(message.content)
        if budget < 0 and kept:
            break
        kept.append(message)
    kept.reverse()
    if options.system:
        kept.insert(0, ChatMessage(role="system", content=options.system))
    return tuple(kept)


def _as_tool_text(output: Any) -> str:
    """A tool's output as the text of a ``tool`` message: JSON, cut to TOOL_RESULT_CHARS."""
    text = output if isinstance(output, str) else json.dumps(output, ensure_ascii=False, default=str)
    if len(text) > TOOL_RESULT_CHARS:
        text = text[:TOOL_RESULT_CHARS] + f" … [cut: {len(text):,} characters in all]"
    return text


@dataclass(slots=True)
class Turn:
    request: TurnRequest
    prepared: store.PreparedTurn
    flags: Mapping[str, Any]
    trace_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    # The answer as it is written.
    text_parts: list[str] = field(default_factory=list)
    reasoning_parts: list[str] = field(default_factory=list)
    parts: list[Any] = field(default_factory=list)  # ChimeraDataPart models, in order
    # Tools offered to the model (definitions, already filtered by what the user's tier may use).
    tool_definitions: tuple[dict[str, Any], ...] = ()
    attempts: list[AttemptFinished] = field(default_factory=list)
    meter: Meter = field(default_factory=Meter)  # the provider attempt in flight (billed on Stop)
    hit_usage: Usage | None = None  # a cache hit's stored usage, known before its text is replayed
    provider: str = ""
    model: str = ""
    finish_reason: str | None = None
    error: ErrorPart | None = None
    stopped: bool = False
    status: str = Message.Status.STREAMING
    started_at: float = field(default_factory=time.monotonic)
    ttft_ms: int | None = None
    finished: TurnFinished | None = None
    task: asyncio.Task | None = None
    # Watchers: everything published so far, and each watcher's queue.
    events: list[Any] = field(default_factory=list)
    subscribers: set[asyncio.Queue] = field(default_factory=set)
    _last_checkpoint: float = 0.0
    _checkpoint_task: asyncio.Task | None = None
    _checkpointed_len: int = 0
    _step_text_from: int = 0  # where the current step's text starts in text_parts
    _separate: bool = False  # the step's first text needs a paragraph break before it
    _calls: list[ToolCall] = field(default_factory=list)  # the current step's tool calls
    _tool_at: dict[str, int] = field(default_factory=dict)  # tool call id -> its part's index in parts

    def __post_init__(self) -> None:
        if self.prepared.partial:  # a continuation: the text so far, which the viewer already shows
            self.text_parts.append(self.prepared.partial)
            self.events.append(TextSnapshot(self.prepared.partial))
            self.tool_definitions = ()  # a tool step would restart the answer, losing what it continues

    # ---- who and where --------------------------------------------------------------
    @property
    def id(self) -> uuid.UUID:
        """The answer's message id."""
        return self.prepared.answer_id

    @property
    def conversation_id(self) -> uuid.UUID:
        return self.prepared.conversation_id

    @property
    def user_id(self) -> Any:
        return self.request.user.pk

    @property
    def tier(self) -> str:
        return self.request.options.tier

    @property
    def siblings(self) -> Siblings:
        return self.prepared.siblings

    @property
    def text(self) -> str:
        return "".join(self.text_parts)

    @property
    def cache_hit(self) -> bool:
        return self.hit_usage is not None or any(a.cache_hit for a in self.attempts)

    # ---- watchers -----------------------------------------------------------------
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

    # ---- the run ------------------------------------------------------------------
    async def run(self) -> None:
        """The answer: one provider call (a step), then — while the model asks for tools and the
        step limit allows — the tools run and their results go back to the model for the next step."""
        self._last_checkpoint = self.started_at
        messages = prompt(self.prepared.branch, self.request)
        last_step = max(1, settings.CHIMERA_TOOL_MAX_STEPS)
        try:
            if self.request.options.use_rag:
                messages = await self._with_knowledge(messages)
            for step in range(1, last_step + 1):
                # The last step offers no tools: the model must answer with what it has.
                offered = self.tool_definitions if step < last_step else ()
                calls = await self._step(step, messages, offered)
                if not calls or self.error is not None:
                    break
                step_text = "".join(self.text_parts[self._step_text_from :])
                results = await self._run_tools(step, calls)
                messages = (*messages, ChatMessage("assistant", step_text, tool_calls=tuple(calls)), *results)
                self._publish(StepFinished(step))
        except asyncio.CancelledError:
            self.stopped = True
            raise
        except Exception:  # a bug must still leave the partial answer saved
            log.exception("turn %s failed", self.id)
            self._fail(StreamError(INTERNAL_ERROR))
        finally:
            await asyncio.shield(self._finish())

    async def _step(
        self, step: int, messages: tuple[ChatMessage, ...], offered: tuple[dict[str, Any], ...]
    ) -> list[ToolCall]:
        """One provider call, streamed; returns the tool calls it asked for."""
        options = self.request.options
        checkpoint_s = settings.CHIMERA_CHECKPOINT_MS / 1000
        publish = self._publish
        self._step_text_from = len(self.text_parts)
        self._calls = []
        continuing = step == 1 and bool(self.prepared.partial)
        # A later step's text starts a new paragraph (a continuation goes on where it stopped).
        self._separate = bool(self._step_text_from) and not continuing
        stream = get_router().stream(
            tier=options.tier,
            messages=messages,
            temperature=options.temperature,
            max_tokens=options.max_tokens,
            tools=offered,
            reasoning=options.tier == "reasoning",
            trace_id=self.trace_id,
            flags=self.flags,
            use_cache=self.request.reuses_cached_answers and options.cache,
            store_cache=options.cache,
            cache_scope=f"user:{self.user_id}" if settings.CHIMERA_CACHE_SCOPE == "user" else "",
            meter=self.meter,
            partial=self.prepared.partial if continuing else "",
        )
        try:
            async for event in stream:
                if type(event) is TextDelta:  # the hot path: an append, a publish
                    if self._separate:
                        self._separate = False
                        event = TextDelta("\n\n" + event.text.lstrip())
                    self.text_parts.append(event.text)
                    if self.ttft_ms is None:
                        self.ttft_ms = int((time.monotonic() - self.started_at) * 1000)
                    publish(event)
                    now = time.monotonic()
                    if now - self._last_checkpoint >= checkpoint_s:
                        self._checkpoint(now)
                    continue
                self._absorb(event, step)
        finally:
            await stream.aclose()
        return self._calls if self.finish_reason == "tool-calls" or self._calls else []

    def _absorb(self, event: Event, step: int) -> None:
        """Everything but text: reasoning, bookkeeping, switches, tool calls, the end."""
        if isinstance(event, ReasoningDelta):
            self.reasoning_parts.append(event.text)
            self._publish(event)
            now = time.monotonic()
            if now - self._last_checkpoint >= settings.CHIMERA_CHECKPOINT_MS / 1000:
                self._checkpoint(now)  # a long thinking is billed too, should the process die
        elif isinstance(event, ToolInputDelta):
            self._publish(event)
        elif isinstance(event, AttemptStarted):
            self.provider, self.model = event.provider, event.model
            if event.cache_hit:
                self.hit_usage = event.usage
        elif isinstance(event, AttemptFinished):
            self.attempts.append(event)
            if not event.error:
                self.provider, self.model = event.provider, event.model
        elif isinstance(event, ProviderSwitched):
            self.provider, self.model = event.to_provider, event.model
            if event.mode == "restart":
                # The step starts over on the next provider: its text and tool calls go, earlier steps stay.
                del self.text_parts[self._step_text_from :]
                self._calls = []
                self._separate = bool(self._step_text_from)
            self._add_part(
                ProviderSwitchPart(
                    fromProvider=event.from_provider,
                    toProvider=event.to_provider,
                    model=event.model,
                    mode=event.mode,
                    reason=event.reason,
                )
            )
        elif isinstance(event, ToolCall):
            call = ToolCall(self._call_id(event.id), event.name, event.args)
            self._calls.append(call)
            self._set_tool_part(
                ToolCallPart(toolCallId=call.id, toolName=call.name, args=call.args, step=step)
            )
        elif isinstance(event, Finish):
            self.finish_reason = event.reason
        elif isinstance(event, StreamError):
            self._fail(event)

    async def _with_knowledge(self, messages: tuple[ChatMessage, ...]) -> tuple[ChatMessage, ...]:
        """useRAG: the best passages of the user's knowledge in the prompt (numbered, to be cited as
        [n]), and their sources with the answer, in the same order."""
        question = self.prepared.branch[-1].content if self.prepared.branch else self.request.content
        block, sources = await rag_context(self.user_id, question, k=RAG_PASSAGES)
        for source in sources:
            self._add_part(source)
        if not block:
            return messages
        if messages and messages[0].role == "system":
            return (ChatMessage("system", f"{messages[0].content}\n\n{block}"), *messages[1:])
        return (ChatMessage("system", block), *messages)

    def _call_id(self, given: str) -> str:
        """The provider's id, made unique within the answer (Gemini may send none or repeat one)."""
        call_id = given or f"call_{len(self._tool_at) + 1}"
        while call_id in self._tool_at:
            call_id = f"{given or 'call'}_{len(self._tool_at) + 1}"
        return call_id

    # ---- tools --------------------------------------------------------------------
    async def _run_tools(self, step: int, calls: list[ToolCall]) -> list[ChatMessage]:
        """Run the step's calls side by side; each result (or error) becomes a ``tool`` message."""
        ctx = ToolContext(
            user_id=self.user_id,
            user_tier=getattr(self.request.user, "tier", "free"),
            conversation_id=self.conversation_id,
            answer_id=self.id,
            trace_id=self.trace_id,
        )
        for call in calls:
            self._set_tool_part(self._tool_part(call.id).model_copy(update={"status": "running"}))
        outcomes = await asyncio.gather(*(tool_registry.invoke(c.name, c.args, ctx) for c in calls))
        messages = []
        for call, outcome in zip(calls, outcomes, strict=True):
            self.attempts.extend(outcome.attempts)  # a tool's own provider calls are billed too
            part = self._tool_part(call.id)
            if outcome.result is not None:
                result = outcome.result
                self._set_tool_part(
                    part.model_copy(
                        update={
                            "status": "success",
                            "result": result.output,
                            "durationMs": outcome.duration_ms,
                        }
                    )
                )
                for extra in result.parts:
                    self._add_part(extra)
                content = _as_tool_text(result.output)
            else:
                self._set_tool_part(
                    part.model_copy(
                        update={"status": "error", "error": outcome.error, "durationMs": outcome.duration_ms}
                    )
                )
                content = _as_tool_text({"error": outcome.error})
            messages.append(ChatMessage("tool", content, tool_call_id=call.id, name=call.name))
        return messages

    def _tool_part(self, call_id: str) -> ToolCallPart:
        return self.parts[self._tool_at[call_id]]

    def _set_tool_part(self, part: ToolCallPart) -> None:
        """A call's card, new or with a new status: replaced in place, and published."""
        assert part.toolCallId is not None
        at = self._tool_at.get(part.toolCallId)
        if at is None:
            self._tool_at[part.toolCallId] = len(self.parts)
            self.parts.append(part)
        else:
            self.parts[at] = part
        self._publish(part)

    def _add_part(self, part: Any) -> None:
        self.parts.append(part)
        self._publish(part)

    def _fail(self, error: StreamError) -> None:
        self.error = ErrorPart(error=error.message, retryable=error.retryable, provider=error.provider)
        self._add_part(self.error)

    # ---- checkpoints --------------------------------------------------------------
    def _checkpoint(self, now: float) -> None:
        if self._checkpoint_task is not None and not self._checkpoint_task.done():
            return
        self._last_checkpoint = now
        self._checkpoint_task = asyncio.create_task(self._write_checkpoint())

    async def _write_checkpoint(self) -> None:
        """The text so far and the attempts so far (the one in flight billed as it stands), so an
        answer whose process dies is settled with both."""
        text = self.text
        size = len(text) + sum(map(len, self.reasoning_parts))
        if size == self._checkpointed_len:
            return
        running = self.meter.running("interrupted")
        pending = {
            "trace_id": self.trace_id,
            "attempts": [
                recording.attempt_json(a) for a in (*self.attempts, *([running] if running else []))
            ],
        }
        try:
            if await db.run(store.checkpoint, self.id, text, pending):
                # Stop asked for from another process.
                if self.task is not None:
                    self.task.cancel()
            self._checkpointed_len = size
        except Exception:
            log.exception("checkpoint of %s failed; the final write will carry the text", self.id)

    # ---- the end ------------------------------------------------------------------
    async def _finish(self) -> None:
        """Save the answer and tell its watchers; whatever fails here, the turn leaves the running set
        and its watchers get a TurnFinished (a row not saved is never reported as complete)."""
        metadata: dict[str, Any] = {}
        data_parts: list[dict[str, Any]] = []
        saved = False
        try:
            if self._checkpoint_task is not None and not self._checkpoint_task.done():
                await asyncio.wait([self._checkpoint_task])
            text = self.text
            if self.finish_reason is not None and self.error is None and not self.stopped:
                self.status = Message.Status.COMPLETE
            elif text:
                self.status = Message.Status.INCOMPLETE
            else:
                self.status = Message.Status.ERROR
            running = self.meter.running("stopped by the user" if self.stopped else "interrupted")
            if running is not None:
                # Closed mid-attempt (Stop, or a failure of ours): billed as the vendor bills it, the
                # prompt and what streamed so far, thinking included.
                self.attempts.append(running)
            if self.reasoning_parts:
                self.parts.insert(0, ThinkingPart(content="".join(self.reasoning_parts)))
            priced = recording.price(self.attempts)
            metadata = self._metadata(priced).model_dump(mode="json")
            data_parts = [*self.prepared.kept_parts, *(dump_part(p) for p in self.parts)]
            saved = await self._save(
                store.FinalAnswer(
                    answer_id=self.id,
                    conversation_id=self.conversation_id,
                    user_id=self.user_id,
                    tier=self.tier,
                    trace_id=self.trace_id,
                    content=text,
                    status=self.status,
                    metadata=metadata,
                    data_parts=data_parts,
                    tool_invocations=[d for d in data_parts if d["type"] == "tool-call"],
                    priced=priced,
                    user_tier=str(getattr(self.request.user, "tier", "") or ""),
                )
            )
        except Exception:
            log.exception("finishing turn %s failed", self.id)
        finally:
            _running.pop(self.id, None)  # no longer kept alive: if it was not saved, it is settled later
            error = self.error.error if self.error else ("Stopped." if self.stopped else "")
            if not saved:
                # The last checkpoint stays in the database and is settled as incomplete by the
                # orphan sweep; say so rather than report an answer that is not stored.
                self.status = Message.Status.INCOMPLETE if self.text else Message.Status.ERROR
                error = NOT_SAVED
            self.finished = TurnFinished(
                message_id=str(self.id),
                conversation_id=str(self.conversation_id),
                status=self.status,
                content=self.text,
                metadata=metadata,
                data_parts=data_parts,
                error=error,
                siblings=self.siblings,
            )
            if saved and self.prepared.created and self.status == Message.Status.COMPLETE:
                # Started before the watchers hear of the end, so the page can wait for it.
                titles.start(
                    conversation_id=self.conversation_id,
                    user_id=self.user_id,
                    question=self.request.content,
                    answer=self.text,
                    fallback=self.prepared.title,
                )
            self._publish(self.finished)
        if saved and settings.CHIMERA_KNOWLEDGE_INDEX_CONVERSATIONS and self.text:
            _remember(self)

    async def _save(self, final: store.FinalAnswer) -> bool:
        """The final write, retried through a database blip (it is idempotent: the same usage rows
        are not added twice). False when it could not be saved within SAVE_RETRIES_S."""
        for pause in (*SAVE_RETRIES_S, None):
            try:
                await db.run(store.finish, final)
                return True
            except Exception:
                if pause is None:
                    billed = ", ".join(
                        f"{p.attempt.provider}/{p.attempt.model} in={p.attempt.usage.input_tokens} "
                        f"out={p.attempt.usage.output_tokens} cost={p.cost}"
                        for p in final.priced
                    )
                    log.exception(
                        "final write of turn %s failed; giving up (unrecorded: %s)", self.id, billed
                    )
                    return False
                log.warning("final write of turn %s failed; retrying in %s s", self.id, pause, exc_info=True)
                await asyncio.sleep(pause)
        return False  # pragma: no cover - the loop returns

    def _metadata(self, priced: list[recording.PricedAttempt]) -> ChimeraMetadata:
        input_tokens = sum(a.usage.input_tokens for a in self.attempts)
        output_tokens = sum(a.usage.output_tokens for a in self.attempts)
        return ChimeraMetadata(
            timestamp=datetime.now(UTC).isoformat(),
            modelUsed=f"{self.provider}/{self.model}" if self.provider else "",
            provider=self.provider,
            tokenCount=input_tokens + output_tokens,
            inputTokens=input_tokens,
            outputTokens=output_tokens,
            reasoningTokens=sum(a.usage.reasoning_tokens for a in self.attempts),
            # Cache hits cost nothing: the usage row keeps the original price as the saving.
            cost=recording.total_cost(priced),
            latency=int((time.monotonic() - self.started_at) * 1000),
            ttft=self.ttft_ms,
            traceId=self.trace_id,
            sessionId=str(self.conversation_id),
            gatewayCache="hit" if self.cache_hit else "miss",
            tier=self.tier,
            switches=[
                p.model_dump(exclude={"type"}) for p in self.parts if isinstance(p, ProviderSwitchPart)
            ],
            finishReason=self.finish_reason,
        )


def _remember(turn: Turn) -> None:
    """The exchange becomes searchable knowledge (searchKnowledge, useRAG), in the background."""
    request, prepared = turn.request, turn.prepared

    async def index() -> None:
        try:
            if request.content:
                await aindex_message(
                    turn.user_id, turn.conversation_id, prepared.user_message_id, "user", request.content
                )
            await aindex_message(turn.user_id, turn.conversation_id, turn.id, "assistant", turn.text)
        except Exception:
            log.exception("indexing the exchange of %s failed", turn.id)

    task = asyncio.create_task(index(), name=f"index-{turn.id}", context=contextvars.Context())
    _indexing.add(task)
    task.add_done_callback(_indexing.discard)


# ---- stopping --------------------------------------------------------------------------------------
async def stop_turn(user, message_id: uuid.UUID) -> bool:
    """Stop an answer in flight; its partial text is kept as `incomplete`."""
    turn = _running.get(message_id)
    if turn is None:
        # Another process may run it: it looks for the stop request at every checkpoint.
        return await db.run(store.request_stop, user, message_id)
    if turn.user_id != user.pk:
        return False
    if turn.task is not None and not turn.task.done():
        turn.task.cancel()
        try:
            await asyncio.wait_for(asyncio.shield(turn.task), timeout=10)
        except (asyncio.CancelledError, TimeoutError):
            pass
    return True


# ---- the turns this process runs, and their heartbeat ---------------------------------------------
# By answer id. Strong references keep the tasks alive.
_running: dict[uuid.UUID, Turn] = {}
_indexing: set[asyncio.Task] = set()  # exchanges being indexed as knowledge (strong references)
_heartbeat: dict[str, asyncio.Task] = {}


async def background_work_done() -> None:
    """Wait until the exchanges this process is indexing are in and its titles are made (a clean
    shutdown, and tests)."""
    while _indexing:
        await asyncio.gather(*list(_indexing), return_exceptions=True)
    await titles.all_done()


def running_turn(message_id: uuid.UUID) -> Turn | None:
    return _running.get(message_id)


def settle_orphans(*, conversation_id=None, message_id=None) -> int:
    """``store.settle_orphans`` sparing the answers this process is writing (sync: database threads)."""
    return store.settle_orphans(
        conversation_id=conversation_id, message_id=message_id, exclude=list(_running)
    )


def _ensure_heartbeat() -> None:
    task = _heartbeat.get("task")
    if task is None or task.done():
        _heartbeat["task"] = asyncio.create_task(
            _beat(), name="turn-heartbeat", context=contextvars.Context()
        )


async def _beat() -> None:
    """Touch every answer this process is writing, so another process never takes one for dead."""
    while _running:
        await asyncio.sleep(settings.CHIMERA_HEARTBEAT_S)
        ids = list(_running)
        if not ids:
            break
        try:
            await db.run(store.touch, ids)
        except Exception:
            log.exception("turn heartbeat failed")
