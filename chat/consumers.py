"""The page's WebSocket: htmx ws-send JSON in, HTML fragments (hx-swap-oob) out.

Actions: send (new message), edit (a user message: new branch), regenerate (an answer: new
sibling), stop, attach (re-join an answer still streaming, e.g. after a reload). The socket builds
a ``TurnRequest``, starts the turn, and *watches* it (``chat.watch``), encoding each batch with
``chat.page.PageEncoder``: closing the socket never stops or loses the answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid

from asgiref.sync import sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer

from chat import conversations, db, page, signals, store, text, titles, tree
from chat.access import amessage_for, as_uuid, conversation_for
from chat.errors import NotFound, TurnError
from chat.request import TurnOptions, TurnRequest
from chat.turns import Turn, start_turn, stop_turn
from chat.watch import watch
from flags.runtime import aget_flags
from tools import registry as tool_registry
from tools.base import ToolContext
from tools.registry import TOOLS
from usage import limits

log = logging.getLogger(__name__)

SERVER_ERROR = (
    "Something went wrong on our side, so that was not done. What you typed is still here: try again."
)
# How long a page waits, after a new conversation's first answer, for its title.
TITLE_WAIT_S = 30.0
WATCH_ERROR = "This page lost track of the answer; it goes on and is saved. Reload the page to see it."


class ChatConsumer(AsyncWebsocketConsumer):
    async def connect(self):
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=4401)
            return
        self.user = user
        self.watchers: dict[uuid.UUID, asyncio.Task] = {}
        session_key = getattr(self.scope.get("session"), "session_key", None)
        self.joined = [signals.user_group(user.pk)] + (
            [signals.session_group(session_key)] if session_key else []
        )
        try:  # to be closed on sign-out or deactivation (chat/signals.py)
            for group in self.joined:
                await self.channel_layer.group_add(group, self.channel_name)
        except Exception as exc:  # the channel layer is down: chat still works
            log.warning("socket not subscribed to sign-outs: %s", exc)
            self.joined = []
        await self.accept()

    async def disconnect(self, code):
        for task in getattr(self, "watchers", {}).values():
            task.cancel()
        for group in getattr(self, "joined", ()):
            try:
                await self.channel_layer.group_discard(group, self.channel_name)
            except Exception:
                break

    async def session_ended(self, event):
        """Signed out or deactivated: say so, and close (the page does not reconnect on 4401)."""
        await self._error(str(event.get("reason") or signals.SIGNED_OUT), "session-ended")
        await self.close(code=4401)

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
            text.check(data)
            if action in ("send", "edit", "regenerate", "continue"):
                await self._start(action, self._turn_request(action, data))
            elif action == "stop":
                message_id = as_uuid(data.get("message_id"))
                if message_id:
                    await stop_turn(self.user, message_id)
            elif action == "attach":
                await self._attach(data.get("message_id"))
            elif action == "run_code":
                await self._run_code(data.get("message_id"), data.get("part"))
            elif action == "save_edit":
                await self._save_edit(data.get("message_id"), data.get("message"))
            else:
                await self._error(f"Unknown action {action!r}.", "input-error")
        except TurnError as exc:
            testid = "rate-limit-error" if exc.code == "rate_limited" else "input-error"
            await self._error(exc.message, testid)
        except Exception:  # our fault, not the person's: say so, keep the socket, back to idle
            log.exception("socket action %r failed", action)
            await self._error(SERVER_ERROR, "server-error")

    def _turn_request(self, action: str, data: dict) -> TurnRequest:
        # The composer's Tools toggle ("on") offers every tool; a list names some. The user's plan
        # decides which of them are allowed.
        asked = data.get("tools")
        plan = getattr(self.user, "tier", "free")
        if asked in ("on", "true", True):  # the toggle: every tool the plan includes
            tools = tuple(name for name in TOOLS if tool_registry.allowed(name, plan))
        elif isinstance(asked, list):
            tools = tuple(name for name in TOOLS if name in asked)
        else:
            tools = ()
        options = TurnOptions(
            tier=str(data.get("tier") or "balanced"),
            tools=tools,
            use_rag=data.get("use_rag") in ("on", True),
            cache=data.get("fresh") not in ("on", True),  # the composer's "Fresh answer" toggle
        )
        conversation_id = data.get("conversation_id") or None
        if action == "send":
            return TurnRequest.send(self.user, data.get("message"), options, conversation_id)
        if action == "edit":
            return TurnRequest.edit(
                self.user, data.get("message_id"), data.get("message"), options, conversation_id
            )
        if action == "continue":
            return TurnRequest.extend(self.user, data.get("message_id"), options, conversation_id)
        return TurnRequest.regenerate(self.user, data.get("message_id"), options, conversation_id)

    async def _start(self, action: str, request: TurnRequest) -> None:
        turn = await start_turn(request)
        # Let the turn reach the provider call first: our rendering then overlaps its wait.
        await asyncio.sleep(0)
        frames = [
            page.status_fragment("streaming", turn.conversation_id, turn.id),
            '<div id="chat-errors" hx-swap-oob="innerHTML"></div>',
        ]
        if action == "send":
            frames.append(page.new_turn_fragment(turn))  # from memory: no database reads
        else:
            frames.append(await sync_to_async(self._branch)(turn))
        self._watch(turn.id, turn, "".join(frames))

    async def _save_edit(self, message_id, content) -> None:
        """Save in the edit box: the message's text replaced in place, no new answer."""
        message = await db.run_once(conversations.revise, self.user, message_id, content)
        await self.send(text_data=await sync_to_async(self._branch_of)(message.conversation_id))

    def _branch(self, turn: Turn) -> str:
        return self._branch_of(turn.conversation_id)

    def _branch_of(self, conversation_id) -> str:
        conversation = conversation_for(self.user, conversation_id)
        return page.branch_fragment(tree.branch_messages(conversation))

    # ---- the Run button of an executable code part -----------------------------------------
    async def _run_code(self, message_id, index) -> None:
        """Run an answer's executable code part through the executeCode tool (same sandbox, same
        limits, counted against the message limit) and show its output under the code."""
        message = await amessage_for(self.user, message_id)
        parts = message.data_parts or []
        part = (
            parts[index]
            if isinstance(index, int) and not isinstance(index, bool) and 0 <= index < len(parts)
            else None
        )
        if not isinstance(part, dict) or part.get("type") != "code" or not part.get("executable"):
            raise TurnError("not_runnable", "That part of the answer is not code that can be run.", 400)
        await db.run_once(store.count_against, self.user, limits.limit_for(self.user, await aget_flags()))
        ctx = ToolContext(
            user_id=self.user.pk,
            user_tier=getattr(self.user, "tier", "free"),
            conversation_id=message.conversation_id,
            answer_id=message.id,
        )
        outcome = await tool_registry.invoke(
            "executeCode", {"language": part.get("language"), "code": part.get("code")}, ctx
        )
        await self.send(text_data=page.code_output_fragment(f"code-output-{message.id}-{index}", outcome))

    # ---- watching an answer --------------------------------------------------------------
    async def _attach(self, message_id) -> None:
        """Re-join an answer the page shows as streaming (after a reload); quietly nothing if it
        is not this person's (or is gone)."""
        try:
            message = await amessage_for(self.user, message_id)
        except NotFound:
            return
        self._watch(message.id, resume=True)

    def _watch(self, message_id: uuid.UUID, turn: Turn | None = None, first_frame: str = "", *, resume=False):
        old = self.watchers.pop(message_id, None)
        if old is not None:
            old.cancel()
        self.watchers[message_id] = asyncio.create_task(self._pump(message_id, turn, first_frame, resume))

    async def _pump(self, message_id: uuid.UUID, turn: Turn | None, first_frame: str, resume: bool) -> None:
        """Relay one answer's events as fragments: everything so far, then live."""
        try:
            async with await watch(message_id, turn, resume=resume) as answer:
                if first_frame:
                    await self.send(text_data=first_frame)
                encoder = page.PageEncoder(message_id)
                if turn is not None and not turn.flags.get("enableStreaming", True):
                    # Streaming switched off by the runtime flags: the whole answer in one frame.
                    whole: list = []
                    async for batch in answer:
                        whole += batch
                    await self.send(text_data=encoder.encode(whole))
                    return
                async for batch in answer:
                    html = encoder.encode(batch)
                    if html:
                        await self.send(text_data=html)
            if turn is not None and turn.prepared.created:
                await self._show_title(turn.conversation_id)
        except asyncio.CancelledError:
            raise
        except Exception:  # the answer goes on (and is saved); only this view of it stopped
            log.exception("watching %s failed", message_id)
            try:
                await self._error(WATCH_ERROR, "server-error")
            except Exception:
                pass
        finally:
            if self.watchers.get(message_id) is asyncio.current_task():
                self.watchers.pop(message_id, None)

    async def _show_title(self, conversation_id) -> None:
        """A new conversation's title, when the fast tier has made one (chat/titles.py)."""
        title = None
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(TITLE_WAIT_S):
                title = await titles.wait(conversation_id)
        if title:
            await self.send(text_data=page.title_fragment(conversation_id, title))

    async def _error(self, message: str, testid: str) -> None:
        await self.send(text_data=page.error_fragment(message, testid))
