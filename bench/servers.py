"""The same Chimera under each ASGI server the README names: daphne (the default), uvicorn with uvloop and
httptools, granian (issue 14: "whichever is chosen, the others are tested to work").

Each server runs one process (granian: its supervisor and one worker) serving ``bench.asgi:application``
with the stack's environment, beside the stack's own daphne (idle meanwhile), on the same database,
Redis and emulator. Phases alternate round after round at each concurrency: direct, the bare relay
(under the stack's daphne: the floor), then every server's API SSE and page WebSocket, the servers'
order turning by one each round so none always goes first. CPU and memory are the server's whole
process tree (``/proc``); SQL statements are not counted (they would need the server to take signals).
"""

from __future__ import annotations

import contextlib
import subprocess
import time
from dataclasses import dataclass

from bench.harness import Harness, Level
from bench.services import PY, ROOT, Beside, Stack, _wait_http, free_port
from chimera.management.children import terminate

APP = "bench.asgi:application"


def commands(port: int) -> dict[str, list[str]]:
    """Each server's command line: one process, loopback, an access log (daphne's default, as in production)."""
    return {
        "daphne": [PY, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), APP],
        "uvicorn": [PY, "-m", "uvicorn", APP, "--host", "127.0.0.1", "--port", str(port), "--loop", "uvloop",
                    "--http", "httptools", "--ws", "websockets-sansio", "--log-level", "info"],
        "granian": [PY, "-m", "granian", "--interface", "asgi", APP, "--host", "127.0.0.1", "--port", str(port),
                    "--workers", "1", "--loop", "uvloop", "--access-log", "--log-level", "warning"],
    }  # fmt: skip


@dataclass
class Server(Beside):
    """One ASGI server in front of the stack's Chimera, measured with all its processes (granian: its
    supervisor and its worker)."""

    name: str

    def __post_init__(self) -> None:
        super().__post_init__()
        self.log = self.state_dir / f"server-{self.name}.log"

    @property
    def root(self) -> subprocess.Popen:
        return self.proc

    def start(self) -> None:
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.command = commands(port)[self.name]
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                self.command, cwd=ROOT, env=self.stack.env(),
                stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip

    def shown(self) -> str:
        """The command line as the report shows it: ``python``, and ``$PORT`` for this run's port."""
        port = self.url.rsplit(":", 1)[1]
        return " ".join(["python", *("$PORT" if part == port else part for part in self.command[1:])])

    def wait_up(self) -> str:
        """'' when it answers, else why not (with the end of its output)."""
        try:
            _wait_http(self.url + "/accounts/login/", self.proc, self.name)
        except RuntimeError as exc:
            return f"{exc}: {self.log.read_text(errors='replace')[-1500:].strip()}"
        return ""


class ServerHarness(Harness):
    def __init__(self, stack, *, answer_s: float, sides: list[str]) -> None:
        super().__init__(stack, answer_s=answer_s)
        self._sides = sides

    def sides(self) -> list[str]:
        return self._sides


@dataclass
class ServersResult:
    commands: dict[str, str]  # server → its command line, as shown in the report
    failed: dict[str, str]  # server → why it did not come up
    sides: list[str]  # the Chimera sides measured on every server
    rounds: int
    floor: dict[int, Level]  # concurrency → direct and the bare relay (the stack's own)
    servers: dict[str, dict[int, Level]]  # server → concurrency → its phases
    turns: int = 0  # turns sent through Chimera (warm-up included)


async def measure(stack: Stack, *, sides: list[str], levels: list[tuple[int, int]], rounds: int,
                  answer_s: float, warm_up: bool = True) -> ServersResult:  # fmt: skip
    servers = [Server(stack, name) for name in commands(0)]
    t0 = time.monotonic()
    for server in servers:
        server.start()
    try:
        failed = {s.name: why for s in servers if (why := s.wait_up())}
        print(f"  up in {time.monotonic() - t0:.1f} s")
        up = [s for s in servers if s.name not in failed]
        for name, why in failed.items():
            print(f"  {name} did not come up: {why}")
        result = ServersResult(
            {s.name: s.shown() for s in servers}, failed, sides, rounds,
            {c: Level(c) for c, _ in levels}, {s.name: {c: Level(c) for c, _ in levels} for s in up},
        )  # fmt: skip
        async with contextlib.AsyncExitStack() as exits:
            floor = await exits.enter_async_context(Harness(stack, answer_s=answer_s))
            await floor.references()
            harnesses = {}
            for s in up:
                h = await exits.enter_async_context(ServerHarness(s, answer_s=answer_s, sides=sides))
                h.reference = floor.reference
                if warm_up:  # every server's connections, caches and lazy imports, before it is measured
                    print(f"  warm-up: {s.name}")
                    await h.level(2, 1, 1)
                harnesses[s.name] = h
            for r in range(rounds):
                names = list(harnesses)
                turn = r % max(1, len(names))
                order = names[turn:] + names[:turn]
                for c, per_worker in levels:
                    print(f"  round {r + 1}, {c} stream{'s' if c > 1 else ''}: {', '.join(order)}")
                    for side in ("direct", "relay"):
                        result.floor[c].phases.append(await floor.phase(side, c, per_worker, offset=r))
                    for name in order:
                        for side in sides:
                            phase = await harnesses[name].phase(side, c, per_worker, offset=r)
                            result.servers[name][c].phases.append(phase)
            result.turns = sum(h.chimera_turns for h in harnesses.values())
        return result
    finally:
        t0 = time.monotonic()
        # All at once: they share 40 s to finish before what is left is killed.
        killed = {p.pid for p in terminate([server.proc for server in servers], grace_s=40)}
        stopped = [f"{server.name}{' killed' if server.proc.pid in killed else ''}" for server in servers]
        print(f"  stopped in {time.monotonic() - t0:.1f} s: {', '.join(stopped)}")
