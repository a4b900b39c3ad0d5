"""The page's encoder: a watch's batches of turn events (``chat.watch``) as ``hx-swap-oob`` fragments.

Token fragments come from ``chat.render`` (string-built: the hot path); everything else is rendered
from the same partials the page itself renders (``templates/chat/partials``), so the page and the
socket never word a thing differently.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.template.loader import render_to_string

from chat.events import TextSnapshot, TurnFinished
from chat.render import delta_fragment, first_token_fragment, reasoning_fragment, replace_text_fragment
from chat.schemas import ProviderSwitchPart
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


def switch_fragment(message_id: str, switch: dict[str, Any]) -> str:
    label = PROVIDER_LABELS.get(switch["toProvider"], switch["toProvider"])
    notice = render_to_string("chat/partials/_switch.html", {"s": {**switch, "toLabel": label}})
    return f'<div hx-swap-oob="beforeend:#ms-{message_id}">{notice}</div>'


def message_fragment(view: Any) -> str:
    """One message re-rendered in place (``view``: a ``chat.tree.MessageView``)."""
    return render_to_string("chat/partials/_message.html", {"m": view, "oob": True})


class PageEncoder:
    """One answer's events as the page's fragments (a watch batch in, one socket frame out)."""

    __slots__ = ("message_id", "started")

    def __init__(self, message_id: Any) -> None:
        self.message_id = str(message_id)
        self.started = False  # the thinking indicator is gone

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
        return "".join(parts)

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
