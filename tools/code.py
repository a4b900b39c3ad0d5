"""executeCode: the model's Python, run in the sandbox (tools/sandbox.py), its output shown on the page.

The model reads back ``{stdout, stderr, exitCode, signal, durationMs, timedOut, truncated, limit,
message}``; the answer gets a ``code-result`` component with the same run for the page to show.
A run that hits a limit is still a result (its partial output helps the model fix the code), with
``message`` saying in words which limit stopped it.
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar, Literal

from django.conf import settings
from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError

from chat.schemas import ComponentPart
from tools import sandbox
from tools.base import Tool, ToolContext, ToolError, ToolResult

log = logging.getLogger(__name__)

MAX_CODE_CHARS = 50_000
PYTHON_NAMES = frozenset({"python", "python3", "py"})


def _as_enum(schema: dict[str, Any]) -> None:
    # A one-value Literal becomes "const", which not every provider's schema dialect accepts.
    schema["enum"] = [schema.pop("const")]


class ExecuteCodeArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    language: Literal["python"] = Field(
        description="The language of the code; only Python runs here.", json_schema_extra=_as_enum
    )
    code: str = Field(
        min_length=1,
        max_length=MAX_CODE_CHARS,
        description=(
            "A complete Python 3 script, run as a file with no network, no packages beyond the "
            "standard library, and a few seconds of time. Print what you want to see."
        ),
    )

    @field_validator("language", mode="before")
    @classmethod
    def _only_python(cls, value: Any) -> Any:
        if isinstance(value, str) and value.strip().lower() in PYTHON_NAMES:
            return "python"
        shown = value if isinstance(value, str) and len(value) <= 40 else "that language"
        raise PydanticCustomError(
            "python_only", "only Python code runs here, not {language}", {"language": repr(shown)}
        )

    @field_validator("code")
    @classmethod
    def _no_nul(cls, value: str) -> str:
        # (Unpaired surrogates never get here: pydantic refuses them as "not a valid string".)
        if "\x00" in value:
            raise PydanticCustomError("nul_byte", "the code contains a NUL character")
        return value


def _mb(n_bytes: int) -> str:
    return f"{n_bytes // 1024} KB" if n_bytes < 1024 * 1024 else f"{n_bytes // (1024 * 1024)} MB"


def _message(run: sandbox.Execution, limits: sandbox.Limits) -> str:
    if run.limit == "timeout":
        if run.signal_name == "SIGXCPU":
            return f"Stopped: the code used more than its {limits.cpu_s} seconds of CPU time."
        return f"Stopped: the code ran longer than the {limits.wall_s:g}-second time limit."
    if run.limit == "memory":
        return f"The code ran out of memory (the limit is {limits.memory_mb} MB)."
    if run.limit == "output":
        return (
            f"Stopped: the code printed more than {_mb(limits.output_bytes)}; "
            "only the beginning of its output is shown."
        )
    if run.signal is not None:
        return f"The code was killed by {run.signal_name}."
    if run.exit_code:
        return f"The code exited with status {run.exit_code}."
    return "The code ran to completion."


def _storable(text: str) -> str:
    # PostgreSQL's jsonb refuses \u0000; the answer's parts are stored as JSON.
    return text.replace("\x00", "\ufffd")


class ExecuteCode(Tool):
    name = "executeCode"
    description = (
        "Run a Python 3 script in an isolated sandbox and get its stdout, stderr and exit status. "
        "Use it to compute, check or demonstrate something; the person sees the output."
    )
    Args = ExecuteCodeArgs
    # A little above the sandbox's wall-clock limit, which stops the code itself.
    timeout_s: ClassVar[float] = float(getattr(settings, "CHIMERA_SANDBOX_WALL_S", 10)) + 5.0
    tiers = frozenset({"free", "pro"})

    async def run(self, ctx: ToolContext, args: ExecuteCodeArgs) -> ToolResult:
        limits = sandbox.Limits.from_settings()
        try:
            run = await sandbox.run_python(args.code, limits=limits)
        except sandbox.SandboxUnavailable as exc:
            log.warning("executeCode unavailable: %s", exc)
            raise ToolError(f"Code cannot run on this server right now: {exc}") from None
        result = {
            "stdout": _storable(run.stdout),
            "stderr": _storable(run.stderr),
            "exitCode": run.exit_code,
            "signal": run.signal_name,
            "durationMs": run.duration_ms,
            "timedOut": run.timed_out,
            "truncated": run.truncated,
            "limit": run.limit,
            "message": _message(run, limits),
        }
        log.info(
            "executeCode for user %s: exit %s, signal %s, limit %s, %d ms",
            ctx.user_id,
            run.exit_code,
            run.signal_name,
            run.limit,
            run.duration_ms,
        )
        part = ComponentPart(component="code-result", props={"language": args.language, **result})
        return ToolResult(output=result, parts=(part,))
