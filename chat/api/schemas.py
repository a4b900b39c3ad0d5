"""Request and response shapes of the API (validated by ninja, documented at /api/docs)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from ninja import Field, Schema

from chat.models import Conversation, Message
from chat.schemas import ChimeraDataPart

Tier = Literal["fast", "balanced", "powerful", "reasoning"]
# The spec's ChimeraTools (tools/registry.py); a request enables the ones the model may call.
ToolName = Literal["searchKnowledge", "analyzeVideo", "generateReport", "executeCode", "queryDatabase"]


# ---- /api/chat/v2 --------------------------------------------------------------------
class MessageIn(Schema):
    """The spec's form (role + content [+ dataParts]) or the AI SDK UIMessage form (id, role, parts)."""

    role: Literal["user", "assistant", "system", "tool"]
    content: str | None = None
    dataParts: list[ChimeraDataPart] | None = None  # the spec's data parts, stored on the message
    parts: list[dict[str, Any]] | None = None
    id: str | None = None
    metadata: Any = None


class ChatConfig(Schema):
    model: Tier = "balanced"
    temperature: float = Field(default=0.7, ge=0, le=2)
    maxTokens: int = Field(default=1000, ge=1, le=4000)
    tools: list[ToolName] | None = None


class ChatContext(Schema):
    useRAG: bool = False  # the top passages of the user's knowledge go in the prompt; cited in the answer
    includeHistory: bool = True
    sessionData: dict[str, Any] | None = None


# Messages one request may carry (a client's history for a new chat is stored, so it is bounded).
MAX_MESSAGES = 500


class ChatRequest(Schema):
    messages: list[MessageIn] = Field(..., min_length=1, max_length=MAX_MESSAGES)
    conversationId: uuid.UUID | None = None
    config: ChatConfig | None = None
    context: ChatContext | None = None
    # Sent by the AI SDK's DefaultChatTransport (useChat): the chat's id, what triggered the request,
    # and the message it concerns (regenerate: the answer to replace).
    id: str | None = Field(default=None, max_length=200)
    trigger: Literal["submit-message", "regenerate-message"] | None = None
    messageId: str | None = Field(default=None, max_length=200)


class TurnIn(Schema):
    """Options for edit and regenerate."""

    config: ChatConfig | None = None
    context: ChatContext | None = None


class EditIn(TurnIn):
    content: str


class UsageOut(Schema):
    inputTokens: int = 0
    outputTokens: int = 0
    reasoningTokens: int = 0
    totalTokens: int = 0
    cost: str | None = None


class AnswerOut(Schema):
    """The blocking answer (``enableStreaming`` off, or ``Accept: application/json``)."""

    id: uuid.UUID
    conversationId: uuid.UUID
    role: str = "assistant"
    status: str
    text: str
    finishReason: str | None = None
    metadata: dict[str, Any]
    usage: UsageOut
    dataParts: list[dict[str, Any]] = []


class ErrorDetail(Schema):
    code: str
    message: str
    field: str | None = None


class ErrorOut(Schema):
    error: ErrorDetail


# ---- conversations ------------------------------------------------------------------
class ConversationOut(Schema):
    id: uuid.UUID
    title: str
    summary: str
    parentId: uuid.UUID | None
    isArchived: bool
    settings: dict[str, Any]
    activeLeafId: uuid.UUID | None
    createdAt: datetime
    updatedAt: datetime


class ConversationPage(Schema):
    items: list[ConversationOut]
    count: int
    limit: int
    offset: int
    nextOffset: int | None


class MessageOut(Schema):
    id: uuid.UUID
    conversationId: uuid.UUID
    parentId: uuid.UUID | None
    role: str
    content: str
    status: str
    metadata: dict[str, Any] | None
    dataParts: list[dict[str, Any]] | None
    toolInvocations: list[dict[str, Any]] | None
    isEdited: bool
    createdAt: datetime


class BranchMessageOut(MessageOut):
    siblingIndex: int
    siblingCount: int
    prevSiblingId: uuid.UUID | None
    nextSiblingId: uuid.UUID | None


class ConversationDetail(ConversationOut):
    messages: list[MessageOut]  # the whole tree, oldest first; parentId links it
    activeBranch: list[BranchMessageOut]  # root to the active leaf, with each message's siblings


class ConversationPatch(Schema):
    title: str | None = Field(default=None, min_length=1, max_length=200)
    isArchived: bool | None = None


class MessageRef(Schema):
    messageId: uuid.UUID


class StopOut(Schema):
    stopped: bool
    message: MessageOut


# ---- API keys -----------------------------------------------------------------------
class ApiKeyIn(Schema):
    name: str = Field(default="default", min_length=1, max_length=100)


class ApiKeyOut(Schema):
    id: uuid.UUID
    name: str
    prefix: str
    createdAt: datetime
    lastUsedAt: datetime | None
    revokedAt: datetime | None


class NewApiKeyOut(ApiKeyOut):
    key: str  # shown once; only its hash is stored


# ---- serialisers (dicts: cheap, and what the schemas above validate) -------------------
def conversation_json(c: Conversation) -> dict[str, Any]:
    return {
        "id": c.id,
        "title": c.title,
        "summary": c.summary,
        "parentId": c.parent_id,
        "isArchived": c.is_archived,
        "settings": c.settings or {},
        "activeLeafId": c.active_leaf_id,
        "createdAt": c.created_at,
        "updatedAt": c.updated_at,
    }


def message_json(m: Message) -> dict[str, Any]:
    return {
        "id": m.id,
        "conversationId": m.conversation_id,
        "parentId": m.parent_message_id,
        "role": m.role,
        "content": m.content,
        "status": m.status,
        "metadata": m.metadata,
        "dataParts": m.data_parts,
        "toolInvocations": m.tool_invocations,
        "isEdited": m.is_edited,
        "createdAt": m.created_at,
    }


def usage_json(metadata: dict[str, Any]) -> dict[str, Any]:
    return {
        "inputTokens": metadata.get("inputTokens") or 0,
        "outputTokens": metadata.get("outputTokens") or 0,
        "reasoningTokens": metadata.get("reasoningTokens") or 0,
        "totalTokens": metadata.get("tokenCount") or 0,
        "cost": metadata.get("cost"),
    }
