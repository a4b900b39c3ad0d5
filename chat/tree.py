"""The message tree: the active branch, siblings, and choosing or copying branches."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from django.db import transaction

from chat import parts as chat_parts
from chat.models import Conversation, Message
from chat.render import markdown_html

PROVIDER_LABELS = {
    "groq": "Groq",
    "google": "Gemini",
    "anthropic": "Anthropic",
    "gateway": "AI Gateway",
    "local": "the local model",
}


@dataclass
class MessageView:
    """What the templates need of one message on the branch."""

    id: Any
    conversation_id: Any
    role: str
    content: str
    status: str
    is_edited: bool
    metadata: dict[str, Any]
    data_parts: list[dict[str, Any]]
    sibling_index: int = 1
    sibling_count: int = 1
    prev_sibling: Any = None
    next_sibling: Any = None
    error: str = ""
    switches: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def build(
        cls,
        *,
        id,
        conversation_id,
        role,
        content,
        status,
        is_edited=False,
        metadata=None,
        data_parts=None,
        sibling_index=1,
        sibling_count=1,
        prev_sibling=None,
        next_sibling=None,
        error="",
    ) -> MessageView:
        # Stored parts are untrusted text: NULs and lone surrogates would break the page's encoding.
        data_parts = chat_parts.scrub(data_parts or [])
        return cls(
            id=id,
            conversation_id=conversation_id,
            role=role,
            content=content,
            status=status,
            is_edited=is_edited,
            metadata=metadata or {},
            data_parts=data_parts,
            sibling_index=sibling_index,
            sibling_count=sibling_count,
            prev_sibling=prev_sibling,
            next_sibling=next_sibling,
            error=error or next((p.get("error", "") for p in data_parts if p.get("type") == "error"), ""),
            switches=[
                {**p, "toLabel": PROVIDER_LABELS.get(p.get("toProvider"), p.get("toProvider"))}
                for p in data_parts
                if p.get("type") == "provider-switch"
            ],
        )

    @classmethod
    def from_message(cls, m: Message, **siblings) -> MessageView:
        return cls.build(
            id=m.id,
            conversation_id=m.conversation_id,
            role=m.role,
            content=m.content,
            status=m.status,
            is_edited=m.is_edited,
            metadata=m.metadata,
            data_parts=m.data_parts,
            **siblings,
        )

    @property
    def fork_url(self) -> str:
        return f"/c/{self.conversation_id}/fork/{self.id}/"

    @property
    def html(self) -> str:
        """The answer's text as sanitised HTML, its ``[n]`` markers linked to the citations."""
        return chat_parts.link_citations(markdown_html(self.content), self.id, len(self.citations))

    @cached_property
    def citations(self) -> list[dict[str, Any]]:
        return chat_parts.citations(self.data_parts, self.id)

    @cached_property
    def parts(self) -> list[dict[str, Any]]:
        """The data parts drawn under the answer, in order (``chat.parts.renderable_parts``);
        thinking, errors and provider switches are drawn in their own places."""
        return chat_parts.renderable_parts(self.data_parts, self.id)

    @property
    def thought_for(self) -> str:
        """How long the model thought (``2.3 s``), when the thinking parts say."""
        durations = [
            p["duration"]
            for p in self.data_parts
            if p.get("type") == "thinking" and type(p.get("duration")) is int and p["duration"] > 0
        ]
        return chat_parts.thought_for(sum(durations)) if durations else ""

    @property
    def provider(self) -> str:
        return self.metadata.get("provider") or ""

    @property
    def model(self) -> str:
        used = self.metadata.get("modelUsed") or ""
        return used.split("/", 1)[1] if "/" in used else used

    @property
    def tokens(self):
        return self.metadata.get("tokenCount")

    @property
    def cost(self):
        cost = self.metadata.get("cost")
        return f"{float(cost):.4f}" if cost else ""

    @property
    def latency(self):
        return self.metadata.get("latency")

    @property
    def cache(self) -> str:
        return self.metadata.get("gatewayCache") or ""

    @property
    def reasoning(self) -> str:
        return "".join(p.get("content", "") for p in self.data_parts if p.get("type") == "thinking")


def _children(messages: list[Message]) -> dict[Any, list[Message]]:
    children: dict[Any, list[Message]] = defaultdict(list)
    for m in messages:
        children[m.parent_message_id].append(m)
    for kids in children.values():
        kids.sort(key=lambda m: m.created_at)
    return children


def path_to(by_id: dict[Any, Message], leaf_id) -> list[Message]:
    """The path from the root down to ``leaf_id`` (inclusive), oldest first; [] if it is unknown."""
    path: list[Message] = []
    node = by_id.get(leaf_id)
    while node is not None:
        path.append(node)
        node = by_id.get(node.parent_message_id) if node.parent_message_id else None
    path.reverse()
    return path


def deepest_leaf(children: dict[Any, list[Message]], node: Message) -> Message:
    """Follow the newest child down to a leaf (the branch someone last worked on)."""
    while children.get(node.id):
        node = children[node.id][-1]
    return node


def branch_messages(conversation: Conversation) -> list[MessageView]:
    messages = list(Message.objects.filter(conversation=conversation))
    if not messages:
        return []
    by_id = {m.id: m for m in messages}
    children = _children(messages)
    leaf = by_id.get(conversation.active_leaf_id) if conversation.active_leaf_id else None
    if leaf is None:
        roots = children.get(None) or []
        if not roots:
            return []
        leaf = deepest_leaf(children, roots[-1])
    path = path_to(by_id, leaf.id)
    views = []
    for m in path:
        siblings = children[m.parent_message_id]
        index = next(i for i, s in enumerate(siblings) if s.id == m.id)
        views.append(
            MessageView.from_message(
                m,
                sibling_index=index + 1,
                sibling_count=len(siblings),
                prev_sibling=siblings[index - 1].id if index > 0 else None,
                next_sibling=siblings[index + 1].id if index + 1 < len(siblings) else None,
            )
        )
    return views


def select_branch(conversation: Conversation, message_id) -> bool:
    """Make the branch through ``message_id`` active (down to its newest leaf)."""
    messages = list(
        Message.objects.filter(conversation=conversation).only("id", "parent_message_id", "created_at")
    )
    node = next((m for m in messages if m.id == message_id), None)
    if node is None:
        return False
    leaf = deepest_leaf(_children(messages), node)
    Conversation.objects.filter(pk=conversation.pk).update(active_leaf=leaf.id)
    conversation.active_leaf_id = leaf.id
    return True


def fork(conversation: Conversation, message_id) -> Conversation | None:
    """Copy the path from the root to ``message_id`` into a new conversation that points back."""
    path = path_to({m.id: m for m in Message.objects.filter(conversation=conversation)}, message_id)
    if not path:
        return None
    with transaction.atomic():
        new = Conversation.objects.create(
            user=conversation.user,
            title=f"{conversation.title} (fork)"[:200],
            parent=conversation,
            settings=conversation.settings,
        )
        copies = []
        parent_id = None
        for m in path:
            copy = Message(
                conversation=new,
                parent_message_id=parent_id,
                role=m.role,
                content=m.content,
                status=m.status if m.status != Message.Status.STREAMING else Message.Status.INCOMPLETE,
                metadata=m.metadata,
                data_parts=m.data_parts,
                tool_invocations=m.tool_invocations,
                is_edited=m.is_edited,
            )
            copies.append(copy)
            parent_id = copy.id
        Message.objects.bulk_create(copies)
        new.active_leaf_id = parent_id
        new.save(update_fields=["active_leaf"])
    return new
