"""The benchmark harness must not rot: a few requests through `bench/run.py --quick`.

This checks that the harness starts the stack (the bare relay included), streams answers every way and produces
sane numbers with no errors. It asserts nothing about speed: timings belong to
`make bench` and docs/PERFORMANCE.md, never to the test suite.
"""

from __future__ import annotations

import json
import math
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Its own database and Redis database, so a smoke run never disturbs a `make bench` in progress.
DATABASE_URL = "postgres://postgres@127.0.0.1:5432/chimera_bench_smoke"
REDIS_URL = "redis://127.0.0.1:6379/3"


def _reachable(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    if not (_reachable(5432) and _reachable(6379)):
        # Never a skip: every machine of this project runs both (see .ci/run to start them).
        pytest.fail("the benchmark needs PostgreSQL and Redis on 127.0.0.1 (start them as .ci/run does)")
    out = tmp_path_factory.mktemp("bench")
    result = subprocess.run(
        [
            sys.executable,
            "bench/run.py",
            "--quick",
            "--database-url",
            DATABASE_URL,
            "--redis-url",
            REDIS_URL,
            "--json",
            str(out / "numbers.json"),
            "--report",
            str(out / "PERFORMANCE.md"),
            "--log",
            str(out / "servers.log"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, (
        result.stdout[-3000:] + result.stderr[-3000:] + (out / "servers.log").read_text()[-3000:]
    )
    assert not (out / "PERFORMANCE.md").exists(), "--quick must not write a report"
    return json.loads((out / "numbers.json").read_text())


def test_the_quick_run_streams_every_answer_without_errors(quick_run):
    numbers = {
        k: v
        for k, v in quick_run["numbers"].items()
        if k not in ("tool_step", "cache_hit", "layout", "servers")
    }
    assert set(numbers) == {"c1", "c2"}
    for level, sides in numbers.items():
        assert {"direct", "relay", "ws"} <= set(sides), level
        for side, s in sides.items():
            assert s["n"] >= 2, (level, side)
            assert s["errors"] == 0, (level, side)
            assert s["mismatched"] == 0, (level, side)


def test_the_numbers_are_sane(quick_run):
    for level, sides in quick_run["numbers"].items():
        if level in ("tool_step", "cache_hit", "layout", "servers"):
            continue
        for side, s in sides.items():
            ttft, total = s["ttft"], s["total"]
            assert all(math.isfinite(float(v)) and v > 0 for v in ttft.values()), side
            assert ttft["50"] <= ttft["95"] <= ttft["99"], side
            # The upstream takes 200 ms to the first token, then 49 more 10 ms apart.
            assert ttft["50"] >= 150, side
            assert total["50"] > ttft["50"] + 300, side
            assert s["interval"] > 5, side
            if side != "direct":
                assert s["cpu_ms"] > 0, f"{side}: its daphne's CPU was not measured"
            if side in ("ws", "sse"):
                assert s["queries_total"] >= 1, "no SQL statements were counted for a turn"
    assert quick_run["pg_per_turn"]["turns"] > 0


def test_the_bare_relay_streams_the_reference_text_from_its_own_daphne(quick_run):
    """The floor (bench/relay.py) is measured in every level like the others: each of its answers was
    compared with the emulator's text for that prompt (a difference counts as an error), it streamed
    (50 pieces over the upstream's 0.5 s, not one lump), and its CPU comes from its own process, which
    has no database."""
    for level in ("c1", "c2"):
        relay = quick_run["numbers"][level]["relay"]
        assert relay["n"] >= 2 and relay["errors"] == 0 and relay["mismatched"] == 0, level
        assert relay["interval"] > 5 and relay["total"]["50"] > relay["ttft"]["50"] + 300, level
        assert relay["cpu_ms"] > 0, level
        assert relay["queries_total"] == 0, level


def test_the_tool_step_is_measured_on_both_transports(quick_run):
    steps = quick_run["numbers"]["tool_step"]
    assert set(steps) == {"sse", "ws"}
    for side, s in steps.items():
        assert s["turns"] == 1, side  # --quick: one counted round
        for key in ("plain_overhead_ms", "tool_overhead_ms", "added_ms", "tool_run_ms"):
            assert all(math.isfinite(v) for v in s[key].values()), (side, key)
        # The tool really ran (in the sandbox), and its time was taken out, not left in.
        assert s["tool_run_ms"]["p50"] > 0, side
        assert s["tool_overhead_ms"]["p50"] >= 0 and s["plain_overhead_ms"]["p50"] >= 0, side
        assert math.isfinite(s["added_cpu_ms"]), side


def test_a_cache_hit_is_measured(quick_run):
    hits = quick_run["numbers"]["cache_hit"]
    assert (
        hits["rounds"] == 2
    )  # --quick: three prompts, each a miss then a hit (same text, checked); one warms up
    for key in ("hit_ttft_ms", "hit_total_ms", "miss_ttft_ms"):
        assert all(math.isfinite(v) and v > 0 for v in hits[key].values()), key
    assert hits["hit_pieces"] > 1  # the hit streamed, in more than one read


def test_the_production_layout_step_streams_through_several_daphne_processes(quick_run):
    """`manage.py web` with two workers on one port: every answer streamed whole, CPU measured in them."""
    layout = quick_run["numbers"]["layout"]
    assert layout["workers"] == 2
    [phase] = [v for k, v in layout.items() if k.startswith("c")]
    for side in ("ws", "sse"):
        s = phase[side]
        assert s["n"] >= 2 and s["errors"] == 0 and s["mismatched"] == 0, side
        assert s["cpu_ms"] > 0, f"{side}: the workers' CPU was not measured"


def test_the_asgi_servers_step_streams_through_daphne_uvicorn_and_granian(quick_run):
    """The same Chimera under one process of each server, interleaved with direct and the relay: every answer
    streamed whole on both sides, CPU measured in each server's processes, and a verdict drawn."""
    servers = quick_run["numbers"]["servers"]
    assert servers["failed"] == {}
    assert list(servers["commands"]) == ["daphne", "uvicorn", "granian"]
    assert set(servers["levels"]) == {"c1", "c2"}
    for level, row in servers["levels"].items():
        assert row["relay"]["n"] >= 1 and row["relay"]["errors"] == 0, level
        for name in ("daphne", "uvicorn", "granian"):
            assert set(row[name]) == {"ws", "sse"}, (level, name)
            for side, s in row[name].items():
                assert s["n"] >= 1 and s["errors"] == 0 and s["mismatched"] == 0, (level, name, side)
                assert s["cpu_ms"] > 0, f"{name} {side}: its processes' CPU was not measured"
                assert math.isfinite(s["added_ttft"]["95"]), (level, name, side)
        assert all(s["cpu_vs_daphne"] == 1 for s in row["daphne"].values()), level
    assert "daphne" in servers["verdict"]
