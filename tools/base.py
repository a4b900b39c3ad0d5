"""What a tool is: a name, a description and an argument schema the model sees, and ``run``.

A tool call from a model goes through ``tools.registry.invoke``: the arguments are validated
against the tool's pydantic ``Args`` (the same schema the model was given), the tool runs with a
time limit, and what comes back is a ``ToolResult``: the ``output`` the model reads (JSON-able),
and data parts (``chat.schemas``) shown with the answer — a chart, a table, code, sources.

A tool reports a failure the person and the model should see (bad arguments, a missing setting,
a refused query) by raising ``ToolError`` with a message in plain words. Anything else it raises is
a bug: logged, and reported to the model as a generic failure.
"""

from __future__ import annotations

import abc
import uuid
from dataclasses import dataclass
from typing import Any, ClassVar

from pydantic import BaseModel

from providers.events import AttemptFinished


class ToolError(Exception):
    """A tool could not do what was asked; ``message`` says why, for the person and the model.
    ``attempts``: provider calls it made before failing (billed all the same)."""

    def __init__(self, message: str, attempts: tuple[AttemptFinished, ...] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.attempts = attempts


@dataclass(frozen=True, slots=True)
class ToolContext:
    """Who asked, and where: a tool acts for this user only."""

    user_id: Any
    user_tier: str  # "free" | "pro"
    conversation_id: uuid.UUID | None = None
    answer_id: uuid.UUID | None = None
    trace_id: str = ""


@dataclass(frozen=True, slots=True)
class ToolResult:
    output: Any  # what the model reads back (JSON-able: a dict, a list, a string)
    parts: tuple[BaseModel, ...] = ()  # ChimeraDataParts for the answer (charts, tables, code, sources)
    # Provider calls the tool made itself (analyzeVideo asks Gemini): billed, so recorded as usage rows.
    attempts: tuple[AttemptFinished, ...] = ()


class Tool(abc.ABC):
    """One tool. Subclasses set the class attributes and implement ``run``."""

    name: ClassVar[str]
    description: ClassVar[str]
    Args: ClassVar[type[BaseModel]]
    # Seconds the whole call may take (sandboxed code has its own, tighter limits inside).
    timeout_s: ClassVar[float] = 20.0
    # User tiers allowed to use it by default (CHIMERA_TOOL_TIERS can change it per deployment).
    tiers: ClassVar[frozenset[str]] = frozenset({"free", "pro"})

    @classmethod
    def definition(cls) -> dict[str, Any]:
        """The neutral tool definition the provider adapters send: name, description, JSON schema."""
        schema = cls.Args.model_json_schema()
        schema.pop("title", None)
        return {"name": cls.name, "description": cls.description, "parameters": schema}

    @abc.abstractmethod
    async def run(self, ctx: ToolContext, args: Any) -> ToolResult:
        """Do the work for ``ctx``'s user with validated ``args`` (an instance of ``Args``)."""
