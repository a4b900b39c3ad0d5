"""A conversation's active branch as Markdown or JSON: what the page's Export links and
``GET /api/conversations/{id}/export?format=md|json`` return (the caller checks ownership)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from django.http import HttpResponse
from django.utils import timezone

from chat import tree
from chat.models import Conversation, Message

FORMATS = ("md", "json")


@dataclass(frozen=True, slots=True)
class Export:
    content: str
    content_type: str
    filename: str


def as_response(exported: Export) -> HttpResponse:
    """A download."""
    response = HttpResponse(exported.content, content_type=exported.content_type)
    response["Content-Disposition"] = f'attachment; filename="{exported.filename}"'
    return response


def export(conversation: Conversation, fmt: str) -> Export:
    views = tree.branch_messages(conversation)
    created = dict(Message.objects.filter(pk__in=[v.id for v in views]).values_list("id", "created_at"))
    messages = [_message(v, created.get(v.id)) for v in views]
    total = sum((_decimal(m["costUsd"]) for m in messages), Decimal(0))
    name = _slug(conversation.title) or "conversation"
    if fmt == "json":
        body = {
            "id": str(conversation.id),
            "title": conversation.title,
            "createdAt": conversation.created_at.isoformat(),
            "updatedAt": conversation.updated_at.isoformat(),
            "forkedFrom": str(conversation.parent_id) if conversation.parent_id else None,
            "exportedAt": timezone.now().isoformat(),
            "branch": "active",
            "totalCostUsd": str(total),
            "messages": messages,
        }
        return Export(json.dumps(body, ensure_ascii=False, indent=2), "application/json", f"{name}.json")
    return Export(_markdown(conversation, messages, total), "text/markdown; charset=utf-8", f"{name}.md")


def _message(view: tree.MessageView, created_at) -> dict[str, Any]:
    metadata = view.metadata or {}
    return {
        "id": str(view.id),
        "role": view.role,
        "content": view.content,
        "status": view.status,
        "edited": view.is_edited,
        "createdAt": created_at.isoformat() if created_at else None,
        "branch": {"index": view.sibling_index, "count": view.sibling_count},
        "model": metadata.get("modelUsed") or None,
        "provider": metadata.get("provider") or None,
        "costUsd": str(metadata["cost"]) if metadata.get("cost") is not None else None,
        "tokens": {
            "input": metadata.get("inputTokens"),
            "output": metadata.get("outputTokens"),
            "reasoning": metadata.get("reasoningTokens"),
        },
        "metadata": metadata,
        "dataParts": view.data_parts,
    }


def _markdown(conversation: Conversation, messages: list[dict[str, Any]], total: Decimal) -> str:
    lines = [f"# {conversation.title or 'Conversation'}", ""]
    lines.append(
        f"_Exported {timezone.now():%Y-%m-%d %H:%M} UTC · {len(messages)} messages · ${total} in all_"
    )
    lines.append("")
    for m in messages:
        if m["role"] == "user":
            heading = "You" + (" (edited)" if m["edited"] else "")
        else:
            facts = [m["model"] or "", f"${m['costUsd']}" if m["costUsd"] else ""]
            if m["branch"]["count"] > 1:
                facts.append(f"answer {m['branch']['index']} of {m['branch']['count']}")
            if m["status"] != "complete":
                facts.append(m["status"])
            heading = "Assistant" + (f" ({' · '.join(f for f in facts if f)})" if any(facts) else "")
        lines += [f"## {heading}", "", m["content"].rstrip() or "_(empty)_", ""]
        for call in (p for p in m["dataParts"] if p.get("type") == "tool-call"):
            lines.append(f"> Tool `{call.get('toolName')}`: {call.get('status', '')}")
        for source in (p for p in m["dataParts"] if p.get("type") == "source-document"):
            lines.append(f"> Source: {source.get('title', '')} {source.get('url') or ''}".rstrip())
    return "\n".join(lines).rstrip() + "\n"


def _decimal(value: str | None) -> Decimal:
    try:
        return Decimal(value) if value else Decimal(0)
    except InvalidOperation:
        return Decimal(0)


def _slug(title: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", title).strip("-").lower()[:60]
