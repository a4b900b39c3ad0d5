"""The page's WebSocket: htmx ws-send JSON in, HTML fragments (hx-swap-oob) out.

Actions: send (new message), edit (a user message: new branch), regenerate
(an answer: new sibling), stop, attach (re-join an answer still streaming,
e.g. after a reload). The socket only *watches* a turn: closing it never stops
or loses the answer.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from html import escape

from asgiref.sync import sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.template.loader import render_to_string
from django.utils import timezone

from chat import db, render, tree
from chat.models import Message
from chat.turns import (
    ORPHAN_AFTER,
    TurnError,
    TurnFinished,
    TurnOptions,
    get_conversation_for_user,
    mark_orphans,
    running_turn,
    start_turn,
    stop_turn,
)

log = logging.getLogger(__name__)
POLL_S = 0.5  # attaching to a turn another process runs: follow its checkpoints


def _uuid(value) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value)) if value else None
    except ValueError:
        return None


def _status(state: str, conversation_id="", message_id="") -> str:
    return (
        f'<div id="turn-status" hx-swap-oob="true" data-state="{state}" '
        f'data-conversation-id="{conversation_id}" data-message-id="{message_id}"></div>'
    )


class ChatConsumer(AsyncWebsocketConsumer):
    async def connect(self):
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=4401)
            return
        self.user = user
        self.watchers: dict[uuid.UUID, asyncio.Task] = {}
        await self.accept()

    async def disconnect(self, code):
        for task in getattr(self, "watchers", {}).values():
            task.cancel()

    async def receive(self, text_data=None, bytes_data=None):
        try:
            data = json.loads(text_data or "{}")
            if not isinstance(data, dict):
                raise ValueError
        except ValueError:
            await self._error("That request could not be read.", "input-error")
            return
        action = data.get("action") or "send"
        try:
            if action in ("send", "edit", "regenerate"):
                await self._start(action, data)
            elif action == "stop":
                message_id = _uuid(data.get("message_id"))
                if message_id:
                    await stop_turn(self.user, message_id)
            elif action == "attach":
                message_id = _uuid(data.get("message_id"))
                if message_id:
                    await self._attach(message_id)
            else:
                await self._error(f"Unknown action {action!r}.", "input-error")
        except TurnError as exc:
            testid = "rate-limit-error" if exc.code == "rate_limited" else "input-error"
            await self._error(exc.message, testid)

    async def _start(self, action: str, data: dict) -> None:
        conversation_id = _uuid(data.get("conversation_id"))
        if data.get("conversation_id") and conversation_id is None:
            raise TurnError("not_found", "That conversation does not exist.", 404)
        options = TurnOptions(tier=str(data.get("tier") or "balanced"))
        message_id = _uuid(data.get("message_id"))
        if action != "send" and (message_id is None or conversation_id is None):
            # Buttons inside a rendered message carry the conversation through the page's form.
            conversation_id = conversation_id or _uuid(data.get("conversation_id"))
            if message_id is None:
                raise TurnError("invalid", "Which message? The request named none.", 400)
            if conversation_id is None:
                conversation_id = await self._conversation_of(message_id)
        turn = await start_turn(
            self.user,
            data.get("message"),
            options,
            conversation_id=conversation_id,
            edit_of=message_id if action == "edit" else None,
            regenerate_of=message_id if action == "regenerate" else None,
        )
        # Let the turn reach the provider call first: our rendering then overlaps its wait.
        await asyncio.sleep(0)
        frames = [
            _status("streaming", turn.conversation_id, turn.id),
            '<div id="chat-errors" hx-swap-oob="innerHTML"></div>',
        ]
        if action == "send":
            frames.append(self._render_new_turn(turn))  # from memory: no database reads
        else:
            frames.append(await sync_to_async(self._render_branch)(turn.conversation_id))
        if turn.created:
            frames.append(self._sidebar_entry(turn))
        self._watch(turn.id, turn, "".join(frames))

    async def _conversation_of(self, message_id):
        row = (
            await Message.objects.filter(pk=message_id, conversation__user=self.user)
            .values("conversation_id")
            .afirst()
        )
        if row is None:
            raise TurnError("not_found", "That message does not exist.", 404)
        return row["conversation_id"]

    # ---- watching a turn --------------------------------------------------------------
    def _watch(self, message_id: uuid.UUID, turn=None, first_frame: str = "") -> None:
        old = self.watchers.pop(message_id, None)
        if old is not None:
            old.cancel()
        self.watchers[message_id] = asyncio.create_task(self._pump(message_id, turn, first_frame))

    async def _attach(self, message_id: uuid.UUID) -> None:
        owned = await Message.objects.filter(pk=message_id, conversation__user=self.user).aexists()
        if owned:
            self._watch(message_id)

    async def _pump(self, message_id: uuid.UUID, turn=None, first_frame: str = "") -> None:
        """Relay one turn's events as fragments: everything so far, then live, coalescing a backlog."""
        try:
            turn = turn or running_turn(message_id)
            if turn is None:
                await self._follow_checkpoints(message_id)
                return
            history, queue = turn.subscribe()  # before any await: nothing can slip between
            try:
                mid = str(message_id)
                started = False
                pending = history
                if first_frame:
                    await self.send(text_data=first_frame)
                elif history:
                    # Re-attach: the text so far in one piece, then the other events, then live.
                    text_so_far = "".join(e.text for e in history if e.kind == "text")
                    if text_so_far:
                        started = True
                        await self.send(
                            text_data=render.first_token_fragment(mid)
                            + render.replace_text_fragment(mid, text_so_far)
                        )
                    pending = [e for e in history if e.kind != "text"]
                while True:
                    if pending:
                        batch, pending = pending, []
                    else:
                        batch = [await queue.get()]
                        while not queue.empty():
                            batch.append(queue.get_nowait())
                    parts: list[str] = []
                    finished = None
                    for event in batch:
                        kind = event.kind
                        if kind == "text":
                            if not started:
                                started = True
                                parts.append(render.first_token_fragment(mid))
                            parts.append(render.delta_fragment(mid, event.text))
                        elif kind == "reasoning":
                            parts.append(render.reasoning_fragment(mid, event.text))
                        elif kind == "provider-switched":
                            parts.append(self._switch_fragment(mid, event))
                            if event.mode == "restart":
                                parts.append(render.replace_text_fragment(mid, ""))
                        elif kind == "turn-finished":
                            finished = event
                    if finished is not None:
                        parts.append(self._render_finished_turn(turn, finished))
                    if parts:
                        await self.send(text_data="".join(parts))
                    if finished is not None:
                        return
            finally:
                turn.unsubscribe(queue)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("watching %s failed", message_id)
        finally:
            if self.watchers.get(message_id) is asyncio.current_task():
                self.watchers.pop(message_id, None)

    async def _follow_checkpoints(self, message_id: uuid.UUID) -> None:
        """The answer runs in another process (or has finished): follow the database."""
        mid = str(message_id)
        sent = None
        while True:
            row = (
                await Message.objects.filter(pk=message_id).values("content", "status", "updated_at").afirst()
            )
            if row is None:
                return
            if (
                row["status"] == Message.Status.STREAMING
                and row["updated_at"] < timezone.now() - ORPHAN_AFTER
            ):
                await db.run(mark_orphans, message_id=message_id)  # its process died: settle it
                continue
            if row["status"] != Message.Status.STREAMING:
                message = await Message.objects.select_related("conversation").aget(pk=message_id)
                finished = TurnFinished(
                    status=message.status,
                    message_id=mid,
                    content=message.content,
                    metadata=message.metadata or {},
                )
                await self.send(text_data=await sync_to_async(self._render_final)(finished))
                return
            if row["content"] != sent:
                sent = row["content"]
                await self.send(
                    text_data=render.first_token_fragment(mid) + render.replace_text_fragment(mid, sent)
                )
            await asyncio.sleep(POLL_S)

    # ---- fragments -----------------------------------------------------------------
    @staticmethod
    def _switch_fragment(mid: str, event) -> str:
        label = tree.PROVIDER_LABELS.get(event.to_provider, event.to_provider)
        how = "answer restarted" if event.mode == "restart" else "continuing the answer"
        if event.from_provider == event.to_provider:
            what = f"{label}'s stream broke — retried it"
        else:
            what = f"{event.from_provider} stopped answering — switched to {label}"
        return (
            f'<div hx-swap-oob="beforeend:#ms-{mid}"><div class="switch-notice" data-testid="provider-switch" '
            f'data-from="{event.from_provider}" data-to="{event.to_provider}">{escape(what)}, {how}.</div></div>'
        )

    def _render_new_turn(self, turn) -> str:
        user = tree.MessageView.build(
            id=turn.user_message_id,
            conversation_id=turn.conversation_id,
            role="user",
            content=turn.user_content,
            status=Message.Status.COMPLETE,
        )
        index, count, prev = turn.siblings
        assistant = tree.MessageView.build(
            id=turn.id,
            conversation_id=turn.conversation_id,
            role="assistant",
            content="",
            status=Message.Status.STREAMING,
            sibling_index=index,
            sibling_count=count,
            prev_sibling=prev,
        )
        body = "".join(render_to_string("chat/partials/_message.html", {"m": v}) for v in (user, assistant))
        # The preview the page drew goes; the real messages go in front of the (empty) placeholder.
        html = f'<div id="pending-turn" hx-swap-oob="innerHTML"></div><div hx-swap-oob="beforebegin:#pending-turn">{body}</div>'
        if turn.created:
            html += '<div id="empty-chat" hx-swap-oob="delete"></div>'
        return html

    def _render_finished_turn(self, turn, finished: TurnFinished) -> str:
        index, count, prev = turn.siblings
        view = tree.MessageView.build(
            id=turn.id,
            conversation_id=turn.conversation_id,
            role="assistant",
            content=finished.content,
            status=finished.status,
            metadata=finished.metadata,
            data_parts=turn.data_parts,
            sibling_index=index,
            sibling_count=count,
            prev_sibling=prev,
            error=finished.error,
        )
        html = render_to_string("chat/partials/_message.html", {"m": view, "oob": True})
        return html + _status("idle", turn.conversation_id, turn.id)

    @staticmethod
    def _sidebar_entry(turn) -> str:
        from chat.models import Conversation

        item = render_to_string(
            "chat/partials/_conversation_item.html",
            {"c": Conversation(id=turn.conversation_id, title=turn.title), "active": None},
        )
        return (
            f'<div hx-swap-oob="afterbegin:#conversation-list">{item}</div>'
            '<div id="no-conversations" hx-swap-oob="delete"></div>'
        )

    def _render_branch(self, conversation_id) -> str:
        conversation = get_conversation_for_user(self.user, conversation_id)
        html = render_to_string(
            "chat/partials/_branch.html", {"messages": tree.branch_messages(conversation)}
        )
        return (
            f'<div id="messages" class="messages" data-testid="messages" hx-swap-oob="innerHTML">{html}</div>'
        )

    def _render_final(self, finished: TurnFinished) -> str:
        message = Message.objects.select_related("conversation").get(pk=finished.message_id)
        html = render_to_string("chat/partials/_message.html", {"m": tree.message_view(message), "oob": True})
        return html + _status("idle", message.conversation_id, message.id)

    async def _error(self, message: str, testid: str) -> None:
        html = render_to_string("chat/partials/_error.html", {"message": message, "testid": testid})
        await self.send(text_data=html + _status("idle"))
