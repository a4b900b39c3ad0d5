"""The production layout measured: ``manage.py web`` (the Procfile's ``web``: a server process per
core on one port; uvicorn unless ``--layout-server daphne``) on the same database, Redis and emulator as the rest of the run.

The stack's single daphne stays up (idle) meanwhile; this starts ``manage.py web --workers N`` with the
same environment and the benchmark's ASGI entry, and measures 50 concurrent streams (interleaved with
direct, a few rounds) and 200 streams started at once on both Chimera sides. CPU and memory are the
workers' together (``/proc/<pid>/task/<pid>/children`` of the command); SQL statements are not
counted here (the workers would overwrite each other's counts).
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass

from bench.harness import Harness, Level
from bench.services import PY, ROOT, Beside, Stack, _wait_http, free_port, process_tree
from chimera.management.children import terminate


@dataclass
class LayoutStack(Beside):
    """The web command's workers, measured without the command itself (it only watches them)."""

    workers: int
    server: str = "uvicorn"

    def __enter__(self) -> LayoutStack:
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        out = open(self.stack.log, "ab") if self.stack.log else subprocess.DEVNULL
        self.web = subprocess.Popen(
            [PY, "manage.py", "web", "--host", "127.0.0.1", "--port", str(port), "--workers", str(self.workers),
             "--server", self.server, "--app", "bench.asgi:application"],
            cwd=ROOT, env=self.stack.env(), stdout=out, stderr=out,
        )  # fmt: skip
        _wait_http(self.url + "/accounts/login/", self.web, "manage.py web")
        return self

    def __exit__(self, *exc) -> None:
        terminate([self.web], grace_s=40)

    @property
    def root(self) -> subprocess.Popen:
        return self.web

    def measured(self) -> list[int]:
        return process_tree(self.web.pid)[1:]


class LayoutHarness(Harness):
    def sides(self) -> list[str]:
        return ["direct", "ws", "sse"]


@dataclass
class LayoutResult:
    workers: int
    server: str
    streams: Level  # 50 concurrent streams, interleaved rounds
    at_once: Level | None  # 200 started at once
    turns: int  # turns sent through Chimera (warm-up included)


async def measure(stack: Stack, *, workers: int, answer_s: float, concurrency: int, per_worker: int,
                  rounds: int, at_once: int, server: str = "uvicorn") -> LayoutResult:  # fmt: skip
    with LayoutStack(stack, workers, server) as layout:
        async with LayoutHarness(layout, answer_s=answer_s) as h:  # type: ignore[arg-type]
            await h.references()
            await h.level(10, 1, 1)  # warm-up: every worker's connections and caches
            streams = await h.level(concurrency, per_worker, rounds)
            stable = await h.stability(at_once) if at_once else None
    return LayoutResult(workers, server, streams, stable, h.chimera_turns)
