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
from dataclasses import dataclass, field

from bench.harness import Harness, Level
from bench.services import PY, ROOT, Stack, _wait_http, free_port, process_tree
from chimera.management.children import terminate


@dataclass
class LayoutStack:
    """What the harness needs of a stack, for the web command's workers (and the stack's emulator)."""

    stack: Stack
    workers: int
    server: str = "uvicorn"
    procs: list[subprocess.Popen] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.emulator_url = self.stack.emulator_url
        self.relay_url = self.stack.relay_url
        self.api_key, self.session = self.stack.api_key, self.stack.session
        self.state_dir = self.stack.state_dir

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

    def pid_of(self, side: str) -> int:
        return self.web.pid

    def cpu_ticks(self, pid: int | None = None) -> int:
        return sum(self.stack.cpu_ticks(child) for child in process_tree(self.web.pid)[1:])

    def rss_kib(self, pid: int | None = None) -> int:
        return sum(self.stack.rss_kib(child) for child in process_tree(self.web.pid)[1:])

    def query_counts(self) -> dict[str, int]:
        return {}


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
