"""The tools by name (lazy imports), who may use which, and running one call safely.

``TOOLS`` maps each of the spec's ChimeraTools to the dotted path of its ``Tool`` class; a tool's
module (and what it imports) is loaded the first time it is used.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from typing import Any

from django.conf import settings
from pydantic import ValidationError

from providers.events import AttemptFinished
from tools.base import Tool, ToolContext, ToolError, ToolResult

log = logging.getLogger(__name__)

TOOLS: dict[str, str] = {
    "searchKnowledge": "knowledge.tools.SearchKnowledge",
    "analyzeVideo": "tools.video.AnalyzeVideo",
    "generateReport": "tools.report.GenerateReport",
    "executeCode": "tools.code.ExecuteCode",
    "queryDatabase": "tools.sql.QueryDatabase",
}
FAILED = "The tool failed unexpectedly; the error was logged."


@cache
def tool_class(name: str) -> type[Tool]:
    try:
        path = TOOLS[name]
    except KeyError:
        raise ToolError(f"There is no tool named {name!r}; the tools are {', '.join(TOOLS)}.") from None
    module_name, _, class_name = path.rpartition(".")
    cls = getattr(importlib.import_module(module_name), class_name)
    if not (isinstance(cls, type) and issubclass(cls, Tool)):
        raise TypeError(f"{path} is not a Tool")
    return cls


def allowed(name: str, user_tier: str) -> bool:
    """May a user of ``user_tier`` use tool ``name``? (CHIMERA_TOOL_TIERS overrides the tool's own.)"""
    override = getattr(settings, "CHIMERA_TOOL_TIERS", {}).get(name)
    tiers = frozenset(override) if override is not None else tool_class(name).tiers
    return user_tier in tiers


def definitions(names: Iterable[str], user_tier: str) -> tuple[dict[str, Any], ...]:
    """The definitions to offer a model: the asked-for tools this tier may use, in TOOLS order."""
    wanted = set(names)
    return tuple(tool_class(n).definition() for n in TOOLS if n in wanted and allowed(n, user_tier))


@dataclass(frozen=True, slots=True)
class Outcome:
    """One call's end: ``result`` on success, else ``error`` (a message for the person and the model);
    ``attempts``: the provider calls the tool made (to be recorded as usage, success or not)."""

    result: ToolResult | None
    error: str
    duration_ms: int
    attempts: tuple[AttemptFinished, ...] = ()

    @property
    def ok(self) -> bool:
        return self.result is not None


async def invoke(name: str, raw_args: Any, ctx: ToolContext) -> Outcome:
    """Validate, run within the tool's time limit, and never raise (a failure is an ``Outcome``)."""
    started = time.monotonic()

    def done(result: ToolResult | None = None, error: str = "", attempts: tuple = ()) -> Outcome:
        if result is not None:
            attempts = result.attempts
        return Outcome(result, error, int((time.monotonic() - started) * 1000), attempts)

    try:
        cls = tool_class(name)
        if not allowed(name, ctx.user_tier):
            return done(error=f"The {name} tool is not available on the {ctx.user_tier} plan.")
        try:
            args = cls.Args.model_validate(raw_args if raw_args is not None else {})
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first.get("loc", ())) or "arguments"
            return done(error=f"Invalid arguments for {name}: {where}: {first.get('msg', 'invalid')}.")
        async with asyncio.timeout(cls.timeout_s):
            return done(await cls().run(ctx, args))
    except ToolError as exc:
        return done(error=exc.message, attempts=exc.attempts)
    except TimeoutError:
        return done(error=f"The {name} tool did not finish within {tool_class(name).timeout_s:g} seconds.")
    except Exception:
        log.exception("tool %s failed", name)
        return done(error=FAILED)
