"""``make bench``: measure what Chimera adds to a streamed answer; write docs/PERFORMANCE.md.

    .venv/bin/python bench/run.py            # the full run (about 6-8 minutes), writes the report
    .venv/bin/python bench/run.py --quick    # a smoke run: a few requests at concurrency 1 and 2, no report

Needs PostgreSQL and Redis (BENCH_DATABASE_URL / BENCH_REDIS_URL, defaults on 127.0.0.1); the
benchmark database is dropped and recreated, the Redis database flushed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import os  # noqa: E402

from bench import cache_hits, layout, report, servers, tools  # noqa: E402
from bench.clients import PROMPTS  # noqa: E402
from bench.harness import CHIMERA_SIDES, Harness  # noqa: E402
from bench.report import side_stats  # noqa: E402
from bench.services import Stack  # noqa: E402

TTFT_MS, CHUNK_MS, CHUNKS = 200, 10, 50


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="bench/run.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--quick", action="store_true", help="smoke run: concurrency 1 and 2, a few requests, no report"
    )
    p.add_argument(
        "--database-url",
        default=os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/chimera_bench"),
    )
    p.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/2"))
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds per concurrency level")
    p.add_argument(
        "--levels",
        default="1:10,10:4,50:3",
        help="concurrency:requests-per-worker per phase, comma-separated",
    )
    p.add_argument(
        "--stability", type=int, default=200, help="streams started at once for the stability check (0: skip)"
    )
    p.add_argument("--no-profile", action="store_true")
    p.add_argument(
        "--layout-workers",
        type=int,
        default=2,
        help="server processes of the production layout step (manage.py web; 0: skip)",
    )
    p.add_argument(
        "--layout-server",
        choices=("uvicorn", "daphne"),
        default="uvicorn",
        help="the production layout's server (manage.py web --server; default: uvicorn, as the Procfile)",
    )
    p.add_argument(
        "--tool-rounds",
        type=int,
        default=20,
        help="plain/tool turn pairs per transport for the tool step (0: skip)",
    )
    p.add_argument(
        "--servers-rounds",
        type=int,
        default=2,
        help="rounds of the ASGI servers step (daphne, uvicorn, granian at 1 and 10 streams; 0: skip)",
    )
    p.add_argument(
        "--conn-max-age", type=int, default=None, help="DB_CONN_MAX_AGE for daphne (default: unset)"
    )
    p.add_argument("--report", default=str(ROOT / "docs" / "PERFORMANCE.md"), help="where the report goes")
    p.add_argument("--json", default=None, help="also write the summary numbers as JSON here")
    p.add_argument("--log", default=None, help="daphne's and the emulator's output (default: discarded)")
    return p.parse_args(argv)


async def measure(stack: Stack, args) -> dict:
    answer_s = (TTFT_MS + CHUNK_MS * (CHUNKS - 1)) / 1000
    async with Harness(stack, answer_s=answer_s) as h:
        await h.references()
        await h.probe_sse()
        if h.sse_note:
            print("note:", h.sse_note)
        results: dict = {"levels": [], "sides": h.sides(), "sse_note": h.sse_note, "profiles": {}}
        print("warm-up")
        await h.level(2 if args.quick else 10, 1 if args.quick else 2, 1)
        if args.quick:
            levels = [(1, 3), (2, 2)]
        else:
            levels = [tuple(int(x) for x in item.split(":")) for item in args.levels.split(",")]
            if args.stability:
                print(f"stability: {args.stability} streams at once")
                results["stability"] = await h.stability(args.stability)
        for concurrency, per_worker in levels:
            print(f"concurrency {concurrency}")
            results["levels"].append(await h.level(concurrency, per_worker, 1 if args.quick else args.rounds))
        if not args.quick and not args.no_profile:
            for side in [s for s in h.sides() if s in CHIMERA_SIDES]:
                print(f"profile: {side}")
                text, summary, turns = await h.profile(side, 10, 5)
                results["profiles"][side] = (text, summary, turns)
        if h.sse_available and args.tool_rounds:
            print("tool step")
            rounds = 1 if args.quick else args.tool_rounds
            results["tool_step"] = await tools.tool_step(stack, rounds)
            h.chimera_turns += 4 * (rounds + 1)
            print("cache hits")
            hit_rounds = 3 if args.quick else 20  # the first warms up
            results["cache_hit"] = await cache_hits.cache_hits(stack, hit_rounds)
            h.chimera_turns += 2 * min(hit_rounds, len(PROMPTS))
        if args.layout_workers:
            print(f"production layout: manage.py web, {args.layout_workers} {args.layout_server} workers")
            results["layout"] = await layout.measure(
                stack,
                workers=args.layout_workers,
                answer_s=answer_s,
                concurrency=2 if args.quick else 50,
                per_worker=1 if args.quick else 3,
                rounds=1 if args.quick else 3,
                at_once=0 if args.quick else (args.stability or 0),
                server=args.layout_server,
            )
            h.chimera_turns += results["layout"].turns
        if args.servers_rounds:
            print("ASGI servers: daphne, uvicorn, granian")
            step_t0 = time.monotonic()
            chimera_sides = [s for s in h.sides() if s in CHIMERA_SIDES]
            results["servers"] = await servers.measure(
                stack,
                sides=chimera_sides,
                levels=[(1, 1), (2, 1)] if args.quick else [(1, 4), (10, 2)],
                rounds=1 if args.quick else args.servers_rounds,
                answer_s=answer_s,
                warm_up=not args.quick,
            )
            h.chimera_turns += results["servers"].turns
            print(f"  ASGI servers step: {time.monotonic() - step_t0:.0f} s")
        results["chimera_turns"] = h.chimera_turns
        return results


def summary(results: dict) -> dict:
    out = {}
    for level in results["levels"] + ([results["stability"]] if results.get("stability") else []):
        key = f"c{level.concurrency}" + ("-at-once" if level is results.get("stability") else "")
        out[key] = {}
        for side in results["sides"]:
            s = side_stats(level.of(side), CHUNKS)
            out[key][side] = {
                k: s[k]
                for k in (
                    "n",
                    "errors",
                    "mismatched",
                    "ttft",
                    "total",
                    "interval",
                    "rps",
                    "cpu_ms",
                    "queries_total",
                    "mem_kib_per_stream",
                )
            }
    return out


def main(argv=None) -> int:
    args = parse_args(argv)
    started = report.now_utc()
    t0 = time.monotonic()
    stack = Stack(
        args.database_url,
        args.redis_url,
        ttft_ms=TTFT_MS,
        chunk_ms=CHUNK_MS,
        chunks=CHUNKS,
        conn_max_age=args.conn_max_age,
        log=Path(args.log) if args.log else None,
    )
    with stack:
        print(
            f"daphne pid {stack.daphne.pid} at {stack.url}; relay pid {stack.relay.pid} at {stack.relay_url}; "
            f"emulator at {stack.emulator_url}"
        )
        pg_before = stack.pg_stats()
        results = asyncio.run(measure(stack, args))
        stack.stop()  # closing daphne's connections flushes Postgres' statistics for them
        pg_after = stack.pg_stats()
    numbers = summary(results)
    chimera_turns = results["chimera_turns"]
    pg = {k: (pg_after[k] - pg_before[k]) / max(1, chimera_turns) for k in pg_after} | {
        "turns": chimera_turns
    }
    errors = sum(v["errors"] for level in numbers.values() for v in level.values())
    print(json.dumps(numbers, indent=1, default=str) if args.quick else f"errors: {errors}")
    if results.get("tool_step"):
        numbers["tool_step"] = results["tool_step"]
    if results.get("cache_hit"):
        numbers["cache_hit"] = results["cache_hit"]
    if results.get("layout"):
        result = results["layout"]
        numbers["layout"] = {"workers": result.workers, "server": result.server}
        for name, level in (("streams", result.streams), ("at_once", result.at_once)):
            if level is not None:
                numbers["layout"][f"c{level.concurrency}-{name}"] = {
                    side: {
                        k: side_stats(level.of(side), CHUNKS)[k]
                        for k in ("n", "errors", "mismatched", "ttft", "cpu_ms", "mem_kib_per_stream")
                    }
                    for side in ("direct", "ws", "sse")
                }
    if results.get("servers"):
        numbers["servers"] = report.servers_stats(results["servers"], CHUNKS)
        print("ASGI servers:", numbers["servers"]["verdict"])
    if args.json:
        Path(args.json).write_text(json.dumps({"numbers": numbers, "pg_per_turn": pg}, indent=1, default=str))
    if not args.quick:
        docs = Path(args.report).parent
        docs.mkdir(parents=True, exist_ok=True)
        profiles = {}
        for side, (text, prof, turns) in results["profiles"].items():
            name = f"performance-profile-{side}." + (
                "folded" if prof.get("tool", "").startswith("py-spy") else "txt"
            )
            (docs / name).write_text(text)
            profiles[side] = (prof, turns, name)
        changes_file = ROOT / "bench" / "CHANGES.md"
        command = "make bench" + (
            f" BENCH_ARGS='{' '.join(argv or sys.argv[1:])}'" if (argv or sys.argv[1:]) else ""
        )
        Path(args.report).write_text(
            report.render(
                results=results,
                sides=results["sides"],
                tokens=CHUNKS,
                command=command,
                sse_note=results["sse_note"],
                started=started,
                duration_s=time.monotonic() - t0,
                profiles=profiles,
                pg=pg,
                changes=changes_file.read_text() if changes_file.exists() else "Nothing yet.",
                conn_max_age=args.conn_max_age,
            )
        )
        print(f"wrote {args.report}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
