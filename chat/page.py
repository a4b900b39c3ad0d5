"""The page's encoder: a watch's batches of turn events (``chat.watch``) as ``hx-swap-oob`` fragments.

Token fragments come from ``chat.render`` (string-built: the hot path); everything else is rendered
from the same partials the page itself renders (``templates/chat/partials``), so the page and the
socket never word a thing differently.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.template.loader import render_to_string
from pydantic import BaseModel

from chat.events import TextSnapshot, TurnFinished
from chat.parts import renderable_parts
from chat.render import delta_fragment, first_token_fragment, reasoning_fragment, replace_text_fragment
from chat.schemas import ErrorPart, ProviderSwitchPart, dump_part
from chat.tree import PROVIDER_LABELS, MessageView
from providers.events import ReasoningDelta, TextDelta


def status_fragment(state: str, conversation_id: Any = "", message_id: Any = "") -> str:
    """The page's turn status: ``streaming`` disables Send and shows Stop; ``idle`` undoes that."""
    return render_to_string(
        "chat/partials/_turn_status.html",
        {"state": state, "conversation_id": conversation_id, "message_id": message_id},
    )


def error_fragment(message: str, testid: str) -> str:
    html = render_to_string("chat/partials/_error.html", {"message": message, "testid": testid})
    return html + status_fragment("idle")


def title_fragment(conversation_id: Any, title: str) -> str:
    """A conversation's new title in the sidebar, in place."""
    item = {"id": conversation_id, "title": title}
    return render_to_string("chat/partials/_conversation_item.html", {"c": item, "active": None, "oob": True})


def switch_fragment(message_id: str, switch: dict[str, Any]) -> str:
    label = PROVIDER_LABELS.get(switch["toProvider"], switch["toProvider"])
    notice = render_to_string("chat/partials/_switch.html", {"s": {**switch, "toLabel": label}})
    return f'<div hx-swap-oob="beforeend:#ms-{message_id}">{notice}</div>'


def message_fragment(view: Any) -> str:
    """One message re-rendered in place (``view``: a ``chat.tree.MessageView``)."""
    return render_to_string("chat/partials/_message.html", {"m": view, "oob": True})


class PageEncoder:
    """One answer's events as the page's fragments (a watch batch in, one socket frame out)."""

    __slots__ = ("_parts", "_tool_at", "message_id", "started")

    def __init__(self, message_id: Any) -> None:
        self.message_id = str(message_id)
        self.started = False  # the thinking indicator is gone
        self._parts: list[dict[str, Any]] = []  # the data parts so far, as stored (tool cards updated)
        self._tool_at: dict[str, int] = {}

    def _first_token(self, parts: list[str]) -> None:
        if not self.started:
            self.started = True
            parts.append(first_token_fragment(self.message_id))

    def encode(self, events: Iterable[Any]) -> str:
        mid = self.message_id
        parts: list[str] = []
        for event in events:
            tp = type(event)
            if tp is TextDelta:
                self._first_token(parts)
                parts.append(delta_fragment(mid, event.text))
            elif tp is ReasoningDelta:
                parts.append(reasoning_fragment(mid, event.text))
            elif tp is TextSnapshot:
                self._first_token(parts)
                parts.append(replace_text_fragment(mid, event.text))
            elif tp is ProviderSwitchPart:
                parts.append(switch_fragment(mid, event.model_dump()))
                if event.mode == "restart":
                    parts.append(replace_text_fragment(mid, ""))
            elif tp is TurnFinished:
                parts.append(self.finished(event))
            elif isinstance(event, BaseModel) and tp is not ErrorPart:  # a tool card, a chart, a source…
                parts.append(self._part(dump_part(event)))
        return "".join(parts)

    def _part(self, part: dict[str, Any]) -> str:
        """The answer's parts drawn again with this one (a card's new status replaces the old)."""
        call_id = part.get("toolCallId") if part.get("type") == "tool-call" else None
        if call_id is not None and call_id in self._tool_at:
            self._parts[self._tool_at[call_id]] = part
        else:
            if call_id is not None:
                self._tool_at[call_id] = len(self._parts)
            self._parts.append(part)
        return render_to_string(
            "chat/partials/_message_parts_oob.html",
            {"message_id": self.message_id, "parts": renderable_parts(self._parts, self.message_id)},
        )

    @staticmethod
    def finished(event: TurnFinished) -> str:
        if event.gone:
            return status_fragment("idle", event.conversation_id)
        siblings = event.siblings
        view = MessageView.build(
            id=event.message_id,
            conversation_id=event.conversation_id,
            role="assistant",
            content=event.content,
            status=event.status,
            metadata=event.metadata,
            data_parts=event.data_parts,
            sibling_index=siblings.index,
            sibling_count=siblings.count,
            prev_sibling=siblings.prev,
            next_sibling=siblings.next,
            error=event.error,
        )
        return message_fragment(view) + status_fragment("idle", event.conversation_id, event.message_id)


def new_turn_fragment(turn: Any) -> str:
    """A turn just started from the composer: its two messages, drawn from memory (no reads)."""
    prepared = turn.prepared
    user = MessageView.build(
        id=prepared.user_message_id,
        conversation_id=prepared.conversation_id,
        role="user",
        content=turn.request.content,
        status="complete",
    )
    siblings = prepared.siblings
    answer = MessageView.build(
        id=turn.id,
        conversation_id=prepared.conversation_id,
        role="assistant",
        content="",
        status="streaming",
        sibling_index=siblings.index,
        sibling_count=siblings.count,
        prev_sibling=siblings.prev,
    )
    html = render_to_string(
        "chat/partials/_new_turn.html", {"messages": (user, answer), "created": prepared.created}
    )
    if prepared.created:
        html += render_to_string(
            "chat/partials/_sidebar_entry.html",
            {"c": {"id": prepared.conversation_id, "title": prepared.title}},
        )
    return html


def branch_fragment(messages: list[MessageView]) -> str:
    """The whole active branch, replaced (after an edit or a regenerate)."""
    return render_to_string("chat/partials/_branch_oob.html", {"messages": messages})


def code_output_fragment(target_id: str, outcome: Any) -> str:
    """A Run button's result (``tools.registry.Outcome``) drawn into its code part's output box."""
    if outcome.result is not None:
        parts = renderable_parts([dump_part(p) for p in outcome.result.parts], "run")
        html = "".join(render_to_string(p["template"], {"part": p}) for p in parts)
    else:
        html = render_to_string("chat/partials/_run_error.html", {"error": outcome.error})
    return f'<div id="{target_id}" class="code-output" data-testid="code-output" hx-swap-oob="innerHTML">{html}</div>'
