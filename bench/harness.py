"""The load generator and the measurements: interleaved phases, direct vs the bare relay vs Chimera.

A *phase* is one side (direct, relay, ws, sse) at one concurrency: ``c`` workers, each sending
``per_worker`` requests one after another, their starts staggered over one answer's
duration so ``c`` streams are open at any time (the 200-stream check starts them all at
once instead). Phases of the sides alternate, round after round, so machine noise
hits them alike. CPU and memory are read from the process that serves the side: the relay's
own daphne for ``relay``, Chimera's daphne for the others (for ``direct``, Chimera idling).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter
from dataclasses import dataclass, field

import httpx2

from bench import clients
from bench.clients import PROMPTS, Sample
from bench.services import Stack

CLK_TCK = os.sysconf("SC_CLK_TCK")
CHIMERA_SIDES = ("ws", "sse")


@dataclass
class Phase:
    side: str
    concurrency: int
    samples: list[Sample]
    wall_s: float
    cpu_ms: float  # the side's daphne utime+stime during the phase
    queries: Counter = field(default_factory=Counter)  # SQL statements by verb during the phase
    rss_before_kib: int = 0
    rss_peak_kib: int = 0
    max_open: int = 0


@dataclass
class Level:
    concurrency: int
    phases: list[Phase] = field(default_factory=list)

    def of(self, side: str) -> list[Phase]:
        return [p for p in self.phases if p.side == side]


def percentile(values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (q in 0..100)."""
    if not values:
        return float("nan")
    v = sorted(values)
    k = (len(v) - 1) * q / 100
    lo = int(k)
    hi = min(lo + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (k - lo)


class Harness:
    def __init__(self, stack: Stack, *, answer_s: float, log=print) -> None:
        self.stack = stack
        self.answer_s = answer_s  # one answer's duration upstream: the stagger window
        self.log = log
        self.reference: dict[int, str] = {}
        self.sse_available = True
        self.sse_note = ""
        self.chimera_turns = 0  # every turn sent through Chimera, warm-up and probes included

    async def __aenter__(self) -> Harness:
        limits = httpx2.Limits(max_connections=None, max_keepalive_connections=1000)
        timeout = httpx2.Timeout(60.0, connect=10.0)
        self.direct_client = httpx2.AsyncClient(limits=limits, timeout=timeout)
        self.sse_client = httpx2.AsyncClient(limits=limits, timeout=timeout)
        self.relay_client = httpx2.AsyncClient(limits=limits, timeout=timeout)
        return self

    async def __aexit__(self, *exc) -> None:
        await self.direct_client.aclose()
        await self.sse_client.aclose()
        await self.relay_client.aclose()

    # ---- setup ------------------------------------------------------------------------
    async def references(self) -> None:
        """What the upstream sends for each prompt: deterministic, so every answer must equal it."""
        # All at once: the emulator answers each prompt the same whatever else it serves.
        samples = await asyncio.gather(
            *(clients.direct(self.direct_client, self.stack.emulator_url, i) for i in range(len(PROMPTS)))
        )
        for i, sample in enumerate(samples):
            if sample.error:
                raise RuntimeError(f"the emulator did not answer: {sample.error}")
            self.reference[i] = sample.text

    async def probe_sse(self) -> None:
        sample = await clients.sse(self.sse_client, self.stack.url, self.stack.api_key, 0)
        self.chimera_turns += 1
        if sample.error and sample.error.startswith("HTTP 404"):
            self.sse_available = False
            self.sse_note = "POST /api/chat/v2 answered 404: the SSE endpoint is not in this tree yet."
        elif sample.error:
            self.sse_available = False
            self.sse_note = f"POST /api/chat/v2 failed: {sample.error}"

    # ---- one phase ----------------------------------------------------------------------
    async def phase(
        self, side: str, concurrency: int, per_worker: int, *, stagger: bool = True, offset: int = 0
    ) -> Phase:
        stack = self.stack
        sockets: list[clients.PageSocket] = []
        refused: dict[int, BaseException] = {}
        if side == "ws":
            sockets = [clients.PageSocket(stack.url, stack.session) for _ in range(concurrency)]
            opened = await asyncio.gather(*(s.__aenter__() for s in sockets), return_exceptions=True)
            # A tab whose socket was refused counts its turns as errors; the phase goes on.
            refused = {i: err for i, err in enumerate(opened) if isinstance(err, BaseException)}
            if refused:
                self.log(
                    f"    {len(refused)} of {concurrency} page sockets refused: {next(iter(refused.values()))!r}"
                )
        open_streams = 0
        state = {"max_open": 0, "rss_peak": 0}

        async def one(worker: int, k: int) -> Sample:
            nonlocal open_streams
            prompt = (offset + worker * per_worker + k) % len(PROMPTS)
            open_streams += 1
            try:
                if side == "direct":
                    return await clients.direct(self.direct_client, stack.emulator_url, prompt)
                if side == "ws":
                    if worker in refused:
                        err = refused[worker]
                        return Sample(
                            "ws", prompt, time.perf_counter(), error=f"socket not opened: {err!r}"[:300]
                        )
                    return await sockets[worker].turn(prompt)
                if side == "relay":
                    return await clients.sse(
                        self.relay_client, stack.relay_url, stack.api_key, prompt, side="relay"
                    )
                return await clients.sse(self.sse_client, stack.url, stack.api_key, prompt)
            finally:
                open_streams -= 1

        async def worker(i: int) -> list[Sample]:
            if stagger and concurrency > 1:
                await asyncio.sleep(self.answer_s * i / concurrency)
            return [await one(i, k) for k in range(per_worker)]

        async def watch_memory() -> None:
            while True:
                if open_streams >= state["max_open"]:
                    state["max_open"] = open_streams
                    state["rss_peak"] = max(state["rss_peak"], stack.rss_kib(pid))
                await asyncio.sleep(0.02)

        pid = stack.pid_of(side)
        chimera = side != "relay"  # the relay has no database: no statements to count
        queries_before = Counter(stack.query_counts()) if chimera else Counter()
        rss_before = stack.rss_kib(pid)
        cpu_before = stack.cpu_ticks(pid)
        t0 = time.perf_counter()
        watcher = asyncio.create_task(watch_memory())
        try:
            results = await asyncio.gather(*(worker(i) for i in range(concurrency)))
        finally:
            watcher.cancel()
        wall = time.perf_counter() - t0
        # The final frame is sent after the turn's last database write, so the phase's work is done.
        cpu_ms = (stack.cpu_ticks(pid) - cpu_before) * 1000 / CLK_TCK
        queries = Counter(stack.query_counts()) if chimera else Counter()
        queries.subtract(queries_before)
        if sockets:
            await asyncio.gather(*(s.__aexit__() for s in sockets), return_exceptions=True)
        samples = [s for batch in results for s in batch]
        if side in CHIMERA_SIDES:
            self.chimera_turns += len(samples)
        for s in samples:
            expected = self.reference.get(s.prompt)
            if s.whole:  # compared as rendered Markdown: whitespace may differ
                if not s.error and " ".join(s.text.split()) != " ".join((expected or "").split()):
                    s.error = "text differs from what the upstream sent (lost or duplicated tokens)"
            elif not s.error and s.text != expected:
                s.error = "text differs from what the upstream sent (lost or duplicated tokens)"
        phase = Phase(
            side,
            concurrency,
            samples,
            wall,
            cpu_ms,
            +queries,
            rss_before,
            state["rss_peak"],
            state["max_open"],
        )
        errors = sum(1 for s in samples if s.error)
        self.log(
            f"  {side:6} c={concurrency:<3} n={len(samples):<4} wall={wall:5.1f}s errors={errors}"
            f" ttft p50={percentile([s.ttft_ms for s in samples if s.first], 50):6.1f}ms"
            f" cpu/answer={cpu_ms / max(1, len(samples)):5.1f}ms"
        )
        if errors:
            first = next(s for s in samples if s.error)
            self.log(f"    first error: {first.error}")
        await asyncio.sleep(0.2)
        return phase

    def sides(self) -> list[str]:
        return ["direct", "relay", "ws"] + (["sse"] if self.sse_available else [])

    async def level(self, concurrency: int, per_worker: int, rounds: int) -> Level:
        level = Level(concurrency)
        for r in range(rounds):
            for side in self.sides():
                level.phases.append(await self.phase(side, concurrency, per_worker, offset=r))
        return level

    async def stability(self, concurrency: int) -> Level:
        """All streams started at once, each side in turn; memory per open stream from here."""
        level = Level(concurrency)
        for side in self.sides():
            level.phases.append(await self.phase(side, concurrency, 1, stagger=False))
        return level

    async def profile(self, side: str, concurrency: int, per_worker: int) -> tuple[str, dict, int]:
        """Profile daphne through one phase: py-spy if installed (all threads), else pyinstrument (loop)."""
        from bench import profiling

        if profiling.pyspy():
            raw = self.stack.state_dir / f"profile-{side}.raw"
            spy = profiling.PySpy(self.stack.daphne.pid, raw)
            await asyncio.sleep(0.5)
            phase = await self.phase(side, concurrency, per_worker)
            summary = spy.stop() | {"rate": 400}
            return raw.read_text(), summary, len(phase.samples)
        self.stack.start_profile()
        await asyncio.sleep(0.1)
        phase = await self.phase(side, concurrency, per_worker)
        text, summary = self.stack.stop_profile()
        return text, summary, len(phase.samples)
