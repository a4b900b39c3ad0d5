"""The provider interface: one small abstract class and the types it speaks.

Every wire format (``providers/adapters/<wire>.py``) implements ``Provider``.
Vendor SDK types and exceptions never leave an adapter: failures become
``ProviderError``.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import Any, Literal

from providers.events import Event, ToolCall

Role = Literal["system", "user", "assistant", "tool"]
Wire = Literal["openai_compat", "gemini", "anthropic"]


@dataclass(frozen=True, slots=True)
class ChatMessage:
    """One message of the conversation sent to a provider.

    An assistant message may carry the tool calls it made (``tool_calls``); a ``tool`` message is
    the result of one call (``tool_call_id``, the tool's ``name``, the result as JSON text).
    Each adapter maps these to its wire's own shapes.
    """

    role: Role
    content: str
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str = ""
    name: str = ""
    # Files the message refers to by URI (a YouTube URL, an uploaded file): wires that can read
    # them attach them (Gemini); the others see only the text.
    media: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ProviderRequest:
    """What the router asks of one provider for one attempt."""

    model: str
    messages: tuple[ChatMessage, ...]
    temperature: float = 0.7
    max_tokens: int = 1000
    # Tool definitions in a neutral JSON-schema form: {"name", "description", "parameters"}.
    tools: tuple[dict[str, Any], ...] = ()
    # Ask a reasoning-capable model to expose its thinking.
    reasoning: bool = False
    # Correlates our logs with the emulator's / provider's request record.
    trace_id: str = ""


@dataclass(frozen=True, slots=True)
class ProviderConfig:
    """How to reach one provider. Built by the catalog from settings/env."""

    name: str  # "groq", "google", "anthropic", "gateway", "local", ...
    wire: Wire
    base_url: str | None = None  # None: the SDK's default (the real service)
    api_key: str = ""
    max_retries: int = 2
    timeout_s: float = 60.0  # the whole attempt
    first_token_timeout_s: float = 15.0  # until the first byte of content
    extra_headers: dict[str, str] = field(default_factory=dict)


class ProviderError(Exception):
    """A failed provider call, vendor-neutral.

    ``status`` is the HTTP status when there was one (None for connection errors,
    timeouts, cut or malformed streams). ``retryable`` says whether trying again
    (this provider or the next) can help; a request the provider rejects as bad
    (400, 401, 403, 404, 422) is not retryable and does not count against the
    circuit breaker. ``retry_after`` is seconds, when the provider said.
    """

    def __init__(
        self,
        message: str,
        *,
        provider: str = "",
        status: int | None = None,
        retryable: bool = True,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.provider = provider
        self.status = status
        self.retryable = retryable
        self.retry_after = retry_after

    @property
    def caused_by_request(self) -> bool:
        """A 4xx the request itself caused (not 408/409/429): no breaker count."""
        return self.status is not None and 400 <= self.status < 500 and self.status not in (408, 409, 429)

    def __repr__(self) -> str:
        return (
            f"ProviderError({self.message!r}, provider={self.provider!r}, status={self.status}, "
            f"retryable={self.retryable}, retry_after={self.retry_after})"
        )


CONTINUE_INSTRUCTION = (
    "Your previous reply was cut off. Continue it exactly from where it stopped, "
    "without repeating anything and without any preamble."
)


class Provider(abc.ABC):
    """One provider endpoint speaking one wire format."""

    def __init__(self, config: ProviderConfig) -> None:
        self.config = config

    def continuation_messages(
        self, messages: tuple[ChatMessage, ...], partial: str
    ) -> tuple[ChatMessage, ...]:
        """The conversation for an attempt that continues ``partial``, a cut answer.

        Most wires treat a trailing assistant message as a finished turn, so the partial answer
        is followed by a short instruction to carry on without repeating. A wire that continues
        a trailing assistant message natively (a prefill) overrides this.
        """
        return (*messages, ChatMessage("assistant", partial), ChatMessage("user", CONTINUE_INSTRUCTION))

    @property
    def name(self) -> str:
        return self.config.name

    @abc.abstractmethod
    def stream(self, request: ProviderRequest) -> AsyncGenerator[Event, None]:
        """Yield TextDelta / ReasoningDelta / ToolCall / Usage events, then exactly one Finish.

        Raises ProviderError for any failure, including a stream that ends without
        the provider's own end marker (a cut connection) or a chunk that cannot be
        parsed. Implementations are async generators.
        """

    @abc.abstractmethod
    async def health(self) -> bool:
        """A cheap reachability check (no tokens spent where the API allows)."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release pooled connections."""
