"""What a transport asks for: one ``TurnRequest``, built by the page's socket or by the API, and nothing else.

A turn is one user message and the answer generated for it. It comes in four modes:

- ``new``: the first message of a new conversation (optionally with the history an API client holds);
- ``continue``: the next message in an existing conversation, under its active branch;
- ``edit``: a user message replaced: a new branch from the same parent;
- ``regenerate``: a new answer to the same user message: a sibling of the old answer.

Input is validated here, when the request is built, so a bad request never reaches the database.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from django.conf import settings

from chat.access import as_uuid
from chat.errors import NotFound, TurnError
from tools import registry

TIERS = ("fast", "balanced", "powerful", "reasoning")


class Mode(StrEnum):
    NEW = "new"
    CONTINUE = "continue"
    EDIT = "edit"
    REGENERATE = "regenerate"
    EXTEND = "extend"  # an answer cut short, continued where it stopped (the same message)


@dataclass(frozen=True, slots=True)
class TurnOptions:
    tier: str = "balanced"
    temperature: float = 0.7
    max_tokens: int = 1000
    include_history: bool = True
    system: str = ""
    tools: tuple[str, ...] = ()  # names of the tools the model may call (tools/registry.py)
    use_rag: bool = False  # put the top passages of the user's knowledge in the prompt, with citations
    cache: bool = (
        True  # False (API ``Cache-Control: no-store``, the page's toggle): no cached answer, none kept
    )

    def __post_init__(self) -> None:
        if self.tier not in TIERS:
            raise TurnError("invalid_model", f"model must be one of {', '.join(TIERS)}.", 422, "config.model")
        if not 0 <= self.temperature <= 2:
            raise TurnError(
                "invalid_temperature", "temperature must be between 0 and 2.", 422, "config.temperature"
            )
        if not 1 <= self.max_tokens <= 4000:
            raise TurnError(
                "invalid_max_tokens", "maxTokens must be between 1 and 4000.", 422, "config.maxTokens"
            )


def tiers_for(user) -> tuple[str, ...]:
    """The model tiers a person's plan includes (CHIMERA_TIER_MODELS), in TIERS order."""
    entitled = settings.CHIMERA_TIER_MODELS.get(getattr(user, "tier", "free"), ())
    return tuple(t for t in TIERS if t in entitled)


def validate_content(content: Any) -> str:
    """The text of a user message, or a TurnError a person understands (field ``message``)."""
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


@dataclass(frozen=True, slots=True)
class TurnRequest:
    """Who asks, where in their conversation tree, and how the answer should be made."""

    user: Any
    mode: Mode
    options: TurnOptions = field(default_factory=TurnOptions)
    # The new user message (every mode but regenerate).
    content: str = ""
    # The conversation: for `new`, the id to give it (None: a fresh one); for edit/regenerate,
    # None means "the conversation of ``target_id``".
    conversation_id: uuid.UUID | None = None
    # edit: the user message replaced; regenerate: the answer replaced.
    target_id: uuid.UUID | None = None
    # new: earlier (role, content) pairs a client holds, oldest first, stored before the new message.
    history: tuple[tuple[str, str], ...] = ()
    # ChimeraDataPart dicts (validated) stored on the new user message.
    data_parts: tuple[dict[str, Any], ...] = ()

    def __post_init__(self) -> None:
        plan = getattr(self.user, "tier", "free")
        refused = [name for name in self.options.tools if not registry.allowed(name, plan)]
        if refused:
            raise TurnError(
                "tool_not_allowed",
                f"{', '.join(refused)} {'is' if len(refused) == 1 else 'are'} not part of the {plan} plan.",
                403,
                "config.tools",
            )
        tier = self.options.tier
        if tier not in tiers_for(self.user):
            plan = getattr(self.user, "tier", "free")
            raise TurnError(
                "tier_not_allowed",
                f"The {tier} model tier is not part of the {plan} plan. "
                f"Pick one of: {', '.join(tiers_for(self.user))}.",
                403,
                "config.model",
            )

    @property
    def reuses_cached_answers(self) -> bool:
        """A regenerated answer must be a new one, not the cached one (nor is a continuation cached)."""
        return self.mode not in (Mode.REGENERATE, Mode.EXTEND)

    # ---- the ways to build one ----------------------------------------------------------
    @classmethod
    def send(
        cls,
        user,
        content: Any,
        options: TurnOptions | None = None,
        conversation_id: Any = None,
        *,
        new_conversation_id: uuid.UUID | None = None,
        history: tuple[tuple[str, str], ...] = (),
        data_parts: tuple[dict[str, Any], ...] = (),
    ) -> TurnRequest:
        """A new message: into ``conversation_id``, or (None) into a new conversation."""
        text = validate_content(content)
        options = options or TurnOptions()
        if conversation_id is None:
            return cls(
                user,
                Mode.NEW,
                options,
                text,
                new_conversation_id,
                history=tuple(history),
                data_parts=tuple(data_parts),
            )
        return cls(
            user,
            Mode.CONTINUE,
            options,
            text,
            _conversation_id(conversation_id),
            data_parts=tuple(data_parts),
        )

    @classmethod
    def edit(
        cls,
        user,
        message_id: Any,
        content: Any,
        options: TurnOptions | None = None,
        conversation_id: Any = None,
        *,
        data_parts: tuple[dict[str, Any], ...] = (),
    ) -> TurnRequest:
        """``message_id`` (a user message) replaced by ``content``: a new branch, answered."""
        text = validate_content(content)
        return cls(
            user,
            Mode.EDIT,
            options or TurnOptions(),
            text,
            _conversation_id(conversation_id) if conversation_id is not None else None,
            _message_id(message_id),
            data_parts=tuple(data_parts),
        )

    @classmethod
    def regenerate(
        cls, user, message_id: Any, options: TurnOptions | None = None, conversation_id: Any = None
    ) -> TurnRequest:
        """A new answer to the message ``message_id`` (an answer) replies to."""
        return cls._on_answer(Mode.REGENERATE, user, message_id, options, conversation_id)

    @classmethod
    def extend(
        cls, user, message_id: Any, options: TurnOptions | None = None, conversation_id: Any = None
    ) -> TurnRequest:
        """The answer ``message_id``, cut short (`incomplete`), continued from where it stopped."""
        return cls._on_answer(Mode.EXTEND, user, message_id, options, conversation_id)

    @classmethod
    def _on_answer(
        cls, mode: Mode, user, message_id: Any, options: TurnOptions | None, conversation_id: Any
    ) -> TurnRequest:
        return cls(
            user,
            mode,
            options or TurnOptions(),
            "",
            _conversation_id(conversation_id) if conversation_id is not None else None,
            _message_id(message_id),
        )


def _conversation_id(value: Any) -> uuid.UUID:
    pk = as_uuid(value)
    if pk is None:
        raise NotFound()
    return pk


def _message_id(value: Any) -> uuid.UUID:
    if not value:
        raise TurnError("invalid", "Which message? The request named none.", 400)
    pk = as_uuid(value)
    if pk is None:
        raise NotFound("There is no such message in that conversation.")
    return pk
