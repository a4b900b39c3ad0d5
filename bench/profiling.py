"""Profiles of the daphne process while it streams answers, summarised into named costs.

py-spy (if installed: ``pip install py-spy``) samples every thread that holds the GIL, so
the database work done in ``sync_to_async`` threads is in it too. Without py-spy the
harness falls back to pyinstrument (a requirement of the test tools) on the event-loop
thread only, started and stopped in daphne by ``bench/asgi.py``.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

# What a sample is spent on: the first rule whose marker is in the stack names it (order matters).
COSTS = [
    ("turn setup: validate, rate limit, insert user + assistant messages", "chat/turns.py:_prepare"),
    ("page: render the new turn and the sidebar (templates, their queries)", "chat/consumers.py:_render_"),
    ("turn end: final message, usage rows, conversation (DB)", "chat/turns.py:_finish"),
    ("checkpoints while streaming (DB)", "chat/turns.py:_write_checkpoint"),
    ("API: request parsing, auth, SSE response", "chat/api"),
    ("API: SSE encoding", "chat/sse.py"),
    ("provider: openai SDK request", "openai/resources/chat"),
    ("provider: openai SDK stream parsing (SSE decode, JSON, pydantic)", "openai/_streaming.py"),
    ("provider: adapter / router", "providers/"),
    ("page: consumer pump + channels/daphne/autobahn websocket send", "chat/consumers.py"),
    ("turn: event loop in Turn.run", "chat/turns.py"),
    ("websocket/HTTP server (daphne, twisted, autobahn)", "twisted/"),
    ("Django ORM / psycopg (other)", "django/db/"),
    ("asyncio event loop", "asyncio/"),
]


def pyspy() -> str | None:
    return shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")


class PySpy:
    def __init__(self, pid: int, out: Path, rate: int = 400) -> None:
        self.out = out
        self.proc = subprocess.Popen(
            [
                pyspy(),
                "record",
                "-p",
                str(pid),
                "-r",
                str(rate),
                "--gil",
                "--nonblocking",
                "--format",
                "raw",
                "-o",
                str(out),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def stop(self) -> dict:
        self.proc.send_signal(signal.SIGINT)
        self.proc.wait(timeout=60)
        return summarise(self.out.read_text())


def _frames(stack: str) -> list[tuple[str, str]]:
    """[(function, path)] root first, from one collapsed py-spy stack."""
    out = []
    for frame in stack.split(";"):
        if " (" in frame:
            fn, where = frame.rsplit(" (", 1)
            out.append((fn, where.rstrip(")").rsplit(":", 1)[0]))
    return out


def summarise(raw: str) -> dict:
    by_cost: Counter[str] = Counter()
    by_leaf: Counter[str] = Counter()
    ours: Counter[str] = Counter()  # inclusive, per function of this repository
    total = 0
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = _frames(stack)
        keys = [f"{path}:{fn.split('.')[-1]}" for fn, path in frames]
        joined = ";".join(keys) + ";" + ";".join(path for _, path in frames)
        for name, marker in COSTS:
            if marker in joined:
                by_cost[name] += n
                break
        else:
            by_cost["other"] += n
        if frames:
            fn, path = frames[-1]
            by_leaf[f"{fn} ({path})"] += n
        seen = set()
        for fn, path in frames:
            if path.startswith(("chat/", "providers/", "chimera/", "usage/")):
                key = f"{fn} ({path})"
                if key not in seen:
                    seen.add(key)
                    ours[key] += n
    return {
        "tool": "py-spy --gil",
        "samples": total,
        "by_cost": by_cost.most_common(),
        "by_leaf": by_leaf.most_common(15),
        "ours": ours.most_common(15),
    }
