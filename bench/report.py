"""docs/PERFORMANCE.md from one run's results (plus the hand-kept log of changes, bench/CHANGES.md)."""

from __future__ import annotations

import math
import os
import platform
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from bench.harness import Level, Phase, percentile

SIDE_NAMES = {
    "direct": "direct to upstream",
    "relay": "bare relay (Django view + openai SDK, no DB)",
    "ws": "Chimera, page WebSocket",
    "sse": "Chimera, API SSE",
}
RELAY_SLACK_MS = 5  # target 2: Chimera's added TTFT p95 at one stream ≤ the relay's + 5 ms
SPEC_TTFT_MS = 500  # target 3: TTFT p95 at 50 streams < 500 ms (the spec's criterion)


def machine() -> str:
    cpu = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem_kib = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem_kib = int(line.split()[1])
    return (
        f"{os.cpu_count()} cores ({cpu}), {mem_kib / 1024 / 1024:.1f} GiB memory, "
        f"{platform.system()} {platform.release()}, Python {platform.python_version()}"
    )


def _f(x: float, digits: int = 1) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def _signed(x: float) -> str:
    return "-" if math.isnan(x) else f"{x:+.1f}"


def _ok(samples) -> list:
    return [s for s in samples if not s.error and s.first is not None and s.done is not None]


def side_stats(phases: list[Phase], tokens: int) -> dict:
    samples = [s for p in phases for s in p.samples]
    ok = _ok(samples)
    ttft = [s.ttft_ms for s in ok]
    total = [s.total_ms for s in ok]
    answers = len(samples)
    queries: Counter = Counter()
    for p in phases:
        queries.update(p.queries)
    return {
        "n": answers,
        "errors": sum(1 for s in samples if s.error),
        "mismatched": sum(1 for s in samples if s.error.startswith("text differs")),
        "whole": sum(1 for s in samples if s.whole),
        "caught_up": sum(1 for s in samples if s.replaced),
        "ttft": {q: percentile(ttft, q) for q in (50, 95, 99)},
        "total": {q: percentile(total, q) for q in (50, 95, 99)},
        "interval": percentile([s.token_interval_ms(tokens) for s in ok], 50),
        "max_gap_p95": percentile([s.max_gap_ms() for s in ok], 95),
        "rps": answers / sum(p.wall_s for p in phases) if phases else float("nan"),
        "cpu_ms": sum(p.cpu_ms for p in phases) / max(1, answers),
        "queries": {k: v / max(1, answers) for k, v in sorted(queries.items())},
        "queries_total": sum(queries.values()) / max(1, answers),
        "mem_kib_per_stream": max(
            ((p.rss_peak_kib - p.rss_before_kib) / p.max_open for p in phases if p.max_open),
            default=float("nan"),
        ),
        "max_open": max((p.max_open for p in phases), default=0),
    }


def level_stats(level: Level, sides: list[str], tokens: int) -> dict:
    return {side: side_stats(level.of(side), tokens) for side in sides}


def _ratio(a: float, b: float) -> float:
    return a / b if b and not math.isnan(b) and not math.isnan(a) else float("nan")


def _mark(ok: bool, margin: str) -> str:
    return f"{'✅' if ok else '❌'} {margin}".rstrip()


def _layout_target_rows(layout, chimera_sides: list[str], tokens: int) -> list[str]:
    """Targets 3 and 4 in the production layout (``manage.py web``, bench/layout.py)."""
    out = []
    st = level_stats(layout.streams, ["direct", *chimera_sides], tokens)
    cells = []
    for side in chimera_sides:
        s = st[side]
        t = s["ttft"][95]
        ok = t < SPEC_TTFT_MS and s["errors"] == 0
        margin = (
            f"{SPEC_TTFT_MS - t:.0f} ms under" if t < SPEC_TTFT_MS else f"missed by {t - SPEC_TTFT_MS:.0f} ms"
        ) + (f", {s['errors']} errors" if s["errors"] else "")
        cells.append(f"{_f(t)} ms, {s['errors']} errors {_mark(ok, margin)}")
    out.append(
        f"| 3. {layout.streams.concurrency} concurrent streams, **production layout** ({layout.workers} {layout.server} "
        f"processes, `manage.py web`): TTFT p95 | < {SPEC_TTFT_MS} ms, no errors | - | "
        + " | ".join(cells)
        + " |"
    )
    if layout.at_once is not None:
        n = layout.at_once.concurrency
        st = level_stats(layout.at_once, ["direct", *chimera_sides], tokens)
        cells = []
        for side in chimera_sides:
            s = st[side]
            ok = s["errors"] == 0 and s["n"] == n and s["mismatched"] == 0
            cells.append(
                f"{s['n'] - s['errors']}/{s['n']} complete, {s['mismatched']} with lost/duplicated tokens; "
                f"{_f(s['mem_kib_per_stream'])} KiB RSS per open stream (all workers) "
                + _mark(ok, "" if ok else f"missed: {s['errors'] + n - s['n']} failed")
            )
        out.append(
            f"| 4. {n} concurrent streams on {layout.workers} processes with Redis | every token delivered once, "
            "no errors; memory reported | - | " + " | ".join(cells) + " |"
        )
    return out


def layout_section(layout, tokens: int) -> list[str]:
    """The production layout's own table: 50 streams interleaved with direct, and 200 at once."""
    out = [
        f"## The production layout: `manage.py web`, {layout.workers} {layout.server} processes on one port\n",
        f"The Procfile's `web`: the command opens the port once and runs a {layout.server} process per core on it "
        "(bench/layout.py starts it with the same database, Redis and emulator). CPU and memory are the "
        "workers' together; SQL statements are not counted here.\n",
        "| phase | side | answers | errors | lost/duplicated | TTFT p50 | p95 | p99 | added p95 | CPU ms / answer |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, level in (("streams", layout.streams), ("at once", layout.at_once)):
        if level is None:
            continue
        st = level_stats(level, ["direct", "ws", "sse"], tokens)
        d = st["direct"]["ttft"][95]
        for side in ("direct", "ws", "sse"):
            s = st[side]
            added = "-" if side == "direct" else _signed(s["ttft"][95] - d)
            cpu = "-" if side == "direct" else _f(s["cpu_ms"])
            out.append(
                f"| {level.concurrency} {name} | {SIDE_NAMES[side]} | {s['n']} | {s['errors']} | {s['mismatched']} "
                f"| {_f(s['ttft'][50])} | {_f(s['ttft'][95])} | {_f(s['ttft'][99])} | {added} | {cpu} |"
            )
    out.append("")
    return out


CLEARLY = 0.9  # a server "wins clearly": under 0.9 of daphne's CPU per answer everywhere (issue 14)
# ...and its TTFT p95 no more than this over daphne's: with a few answers a cell, p95 is near the maximum and
# moves by more than this between runs; 5 ms is the issue's own tolerance for added latency.
TTFT_SLACK_MS = 5.0


def _server_cell(s: dict, direct: dict, daphne_cpu: float) -> dict:
    return {
        "n": s["n"],
        "errors": s["errors"],
        "mismatched": s["mismatched"],
        "ttft": {q: s["ttft"][q] for q in (50, 95)},
        "added_ttft": {q: s["ttft"][q] - direct["ttft"][q] for q in (50, 95)},
        "cpu_ms": s["cpu_ms"],
        "cpu_vs_daphne": _ratio(s["cpu_ms"], daphne_cpu),
    }


def servers_stats(result, tokens: int) -> dict:
    """The ASGI servers step (bench/servers.py) as numbers: per concurrency, direct and the bare relay, then
    per server and side: TTFT, added TTFT over direct, CPU per answer and its ratio to daphne's."""
    levels: dict = {}
    nan = float("nan")
    for c, floor in result.floor.items():
        direct = side_stats(floor.of("direct"), tokens)
        daphne = result.servers.get("daphne", {}).get(c)
        daphne_cpu = {
            side: side_stats(daphne.of(side), tokens)["cpu_ms"] if daphne else nan for side in result.sides
        }
        row = {"direct": _server_cell(direct, direct, nan)}
        # The relay's ratio is to daphne serving Chimera's API: the floor's share of it.
        row["relay"] = _server_cell(side_stats(floor.of("relay"), tokens), direct, daphne_cpu.get("sse", nan))
        for name, by_c in result.servers.items():
            row[name] = {
                side: _server_cell(side_stats(by_c[c].of(side), tokens), direct, daphne_cpu[side])
                for side in result.sides
            }
        levels[f"c{c}"] = row
    out = {
        "commands": result.commands,
        "failed": result.failed,
        "rounds": result.rounds,
        "sides": result.sides,
        "levels": levels,
    }
    out["verdict"] = servers_verdict(out)
    return out


def servers_verdict(stats: dict) -> str:
    """One line from the numbers: which server used the least CPU per answer, by how much, and whether it wins
    *clearly* (under 0.9 of daphne's at every measured concurrency and side, no more errors, TTFT p95 at most
    TTFT_SLACK_MS over daphne's)."""
    levels, sides = stats["levels"], stats["sides"]
    names = [n for n in stats["commands"] if n not in stats["failed"]]
    failed = "".join(f" {n} did not come up ({why.split(':')[0]})." for n, why in stats["failed"].items())
    if "daphne" not in names or len(names) < 2:
        return "Nothing to compare: " + (failed.strip() or "only one server measured.")
    cells = [(c, side) for c in levels for side in sides]

    def ratios(name: str) -> list[float]:
        return [levels[c][name][side]["cpu_vs_daphne"] for c, side in cells]

    def mean(xs: list[float]) -> float:
        return sum(xs) / len(xs)

    least = min(names, key=lambda n: mean(ratios(n)))
    streams = " / ".join(c[1:] for c in levels)
    others = "; ".join(
        f"{n}: "
        + ", ".join(
            f"{SIDE_NAMES[side].split(', ')[-1]} {' / '.join(_f(levels[c][n][side]['cpu_vs_daphne'], 2) for c in levels)}"
            for side in sides
        )
        for n in names
        if n != "daphne"
    )
    if least == "daphne":
        return f"daphne used the least CPU per answer (the others' ÷ daphne at {streams} streams: {others}).{failed}"
    shortfalls = []
    for c, side in cells:
        mine, base = levels[c][least][side], levels[c]["daphne"][side]
        where = f"at {c[1:]} stream{'s' if c != 'c1' else ''} ({SIDE_NAMES[side].split(', ')[-1]})"
        ratio = mine["cpu_vs_daphne"]
        if not ratio < CLEARLY:
            less = (1 - ratio) * 100
            shortfalls.append(
                f"only {less:.0f} % less CPU {where}" if less > 0 else f"{-less:.0f} % more CPU {where}"
            )
        if mine["errors"] > base["errors"]:
            shortfalls.append(f"{mine['errors'] - base['errors']} more errors {where}")
        if not mine["ttft"][95] <= base["ttft"][95] + TTFT_SLACK_MS:
            shortfalls.append(f"TTFT p95 {mine['ttft'][95] - base['ttft'][95]:.1f} ms worse {where}")
    head = (
        f"{least} used the least CPU per answer, {(1 - mean(ratios(least))) * 100:.0f} % less than daphne on average "
        f"(÷ daphne at {streams} streams: {others})"
    )
    if shortfalls:
        return f"{head}; not clearly ({'; '.join(shortfalls)}).{failed}"
    return (
        f"{head}; it wins clearly (more than {(1 - CLEARLY) * 100:.0f} % less CPU everywhere, no more errors, "
        f"TTFT p95 within {TTFT_SLACK_MS:g} ms of daphne's).{failed}"
    )


def servers_section(stats: dict) -> list[str]:
    out = [
        "## ASGI servers\n",
        "The same Chimera (`bench.asgi:application`, the stack's environment, database, Redis and emulator) under "
        "one process of each server the README names, measured in one run (bench/servers.py): phases alternate "
        f"round after round ({stats['rounds']} rounds), direct and the bare relay (under daphne: the floor) first, "
        "then each server's sides, the servers' order turning each round. CPU is the server's whole process tree "
        "(granian: its supervisor and its worker) per answer; *÷ daphne* is that over daphne's on the same side "
        "(for the relay: over daphne's API SSE). *Added* is over direct at the same concurrency.\n",
    ]
    for name, command in stats["commands"].items():
        why = stats["failed"].get(name)
        out.append(f"- {name}: `{command}`" + (f" — **did not come up**: {why}" if why else ""))
    out += [
        "",
        "| streams | server | side | answers | errors | TTFT p50 | p95 | added p50 | added p95 | CPU ms / answer "
        "| ÷ daphne |",
        "|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]

    def row(c: str, server: str, side: str, s: dict) -> str:
        reference = server == "direct"
        return (
            f"| {c[1:]} | {server} | {side} | {s['n']} | {s['errors']} | {_f(s['ttft'][50])} | {_f(s['ttft'][95])} "
            f"| {'-' if reference else _signed(s['added_ttft'][50])} "
            f"| {'-' if reference else _signed(s['added_ttft'][95])} "
            f"| {'-' if reference else _f(s['cpu_ms'])} | {'-' if reference else _f(s['cpu_vs_daphne'], 2)} |"
        )

    for c, level in stats["levels"].items():
        out.append(row(c, "direct", "direct to upstream", level["direct"]))
        out.append(row(c, "relay (daphne)", "bare relay, SSE", level["relay"]))
        for name in stats["commands"]:
            for side in stats["sides"] if name in level else ():
                out.append(row(c, name, SIDE_NAMES[side].split(", ")[-1], level[name][side]))
    out += ["", f"**Verdict:** {stats['verdict']}", ""]
    return out


def targets_table(
    stats: dict, st200: dict | None, n200: int, chimera_sides: list[str], layout=None, tokens: int = 50
) -> list[str]:
    """Issue 14's four targets: each Chimera side's figure, the bare relay's, the ratio, met or missed by how much."""
    out = ["## Targets\n"]
    w = out.append
    w(
        "Issue 14's targets, against the bare relay (bench/relay.py: the same daphne, the same `openai` SDK client "
        "options, no database, no auth, no middleware) measured in the same interleaved run. *Ratio* is Chimera ÷ "
        "relay; the margin after ✅/❌ is how far inside (or outside) the limit the figure is.\n"
    )
    w("| target | limit | bare relay | " + " | ".join(SIDE_NAMES[s] for s in chimera_sides) + " |")
    w("|---|---|---|" + "---|" * len(chimera_sides))
    # 1. CPU per streamed answer, DB writes included, ≤ the relay's, at 1, 10 and 50 streams.
    for c in (1, 10, 50):
        if c not in stats or "relay" not in stats[c]:
            continue
        relay = stats[c]["relay"]["cpu_ms"]
        cells = []
        for side in chimera_sides:
            cpu = stats[c][side]["cpu_ms"]
            ratio = _ratio(cpu, relay)
            over = cpu - relay
            margin = (
                f"{abs(over):.1f} ms under"
                if over <= 0
                else f"missed by {over:.1f} ms ({(ratio - 1) * 100:.0f} %)"
            )
            cells.append(f"{_f(cpu)} ms, ratio **{_f(ratio, 2)}** {_mark(over <= 0, margin)}")
        w(
            f"| 1. CPU per streamed 50-chunk answer, DB writes included, {c} stream{'s' if c > 1 else ''} "
            f"| ≤ relay's | {_f(relay)} ms | " + " | ".join(cells) + " |"
        )
    # 2. Added TTFT p95 at one stream ≤ the relay's + 5 ms.
    if 1 in stats and "relay" in stats[1]:
        d, r = stats[1]["direct"]["ttft"][95], stats[1]["relay"]["ttft"][95]
        cells = []
        for side in chimera_sides:
            t = stats[1][side]["ttft"][95]
            spare = (
                r + RELAY_SLACK_MS
            ) - t  # = relay's added + 5 - Chimera's added (both vs the same direct)
            margin = f"{spare:.1f} ms to spare" if spare >= 0 else f"missed by {-spare:.1f} ms"
            cells.append(
                f"{_signed(t - d)} ms (TTFT p95 ÷ relay {_f(_ratio(t, r), 3)}, ÷ direct {_f(_ratio(t, d), 3)}) "
                f"{_mark(spare >= 0, margin)}"
            )
        w(
            f"| 2. added TTFT p95 at 1 stream (vs direct) | ≤ relay's + {RELAY_SLACK_MS} ms "
            f"| {_signed(r - d)} ms | " + " | ".join(cells) + " |"
        )
    # 3. 50 concurrent streams: TTFT p95 < 500 ms, no errors.
    if 50 in stats:
        r50 = stats[50].get("relay")
        cells = []
        for side in chimera_sides:
            s = stats[50][side]
            t = s["ttft"][95]
            ok = t < SPEC_TTFT_MS and s["errors"] == 0
            margin = (
                f"{SPEC_TTFT_MS - t:.0f} ms under"
                if t < SPEC_TTFT_MS
                else f"missed by {t - SPEC_TTFT_MS:.0f} ms"
            ) + (f", {s['errors']} errors" if s["errors"] else "")
            ratio = f", ÷ relay {_f(_ratio(t, r50['ttft'][95]), 2)}" if r50 else ""
            cells.append(f"{_f(t)} ms, {s['errors']} errors{ratio} {_mark(ok, margin)}")
        relay_cell = f"{_f(r50['ttft'][95])} ms, {r50['errors']} errors" if r50 else "-"
        w(
            f"| 3. 50 concurrent streams: TTFT p95 (absolute) | < {SPEC_TTFT_MS} ms, no errors | {relay_cell} | "
            + " | ".join(cells)
            + " |"
        )
    # 4. 200 concurrent streams: every token once, no errors; daphne memory per open stream.
    if st200 is not None:

        def cell(s: dict) -> str:
            return (
                f"{s['n'] - s['errors']}/{s['n']} complete, {s['mismatched']} with lost/duplicated tokens, "
                f"{s['whole']} arrived whole; {_f(s['mem_kib_per_stream'])} KiB RSS per open stream"
            )

        r200 = st200.get("relay")
        cells = []
        for side in chimera_sides:
            s = st200[side]
            ok = s["errors"] == 0 and s["n"] == n200
            mem = (
                f" (÷ relay {_f(_ratio(s['mem_kib_per_stream'], r200['mem_kib_per_stream']), 2)})"
                if r200
                else ""
            )
            cells.append(
                cell(s) + mem + " " + _mark(ok, "" if ok else f"missed: {s['errors'] + n200 - s['n']} failed")
            )
        w(
            f"| 4. {n200} concurrent streams | every token delivered once, no errors; memory reported "
            f"| {cell(r200) if r200 else '-'} | " + " | ".join(cells) + " |"
        )
    if layout is not None:
        out.extend(_layout_target_rows(layout, chimera_sides, tokens))
    w("")
    return out


def render(
    *,
    results: dict,
    sides: list[str],
    tokens: int,
    command: str,
    sse_note: str,
    started: datetime,
    duration_s: float,
    profiles: dict,
    pg: dict,
    changes: str,
    conn_max_age,
) -> str:
    levels: list[Level] = results["levels"]
    stability: Level | None = results.get("stability")
    stats = {lv.concurrency: level_stats(lv, sides, tokens) for lv in levels}
    chimera_sides = [s for s in sides if s in ("ws", "sse")]
    out: list[str] = []
    w = out.append
    w("# Performance: what Chimera adds to a streamed answer\n")
    w(
        f"Generated by `{command}` on {started:%Y-%m-%d %H:%M} UTC in {duration_s / 60:.1f} minutes. "
        "Every number below comes from that one run.\n"
    )
    w(f"- Machine: {machine()}.")
    w(
        "- System under test: one daphne process (`bench.asgi:application`, which is `chimera.asgi:application` plus a "
        "statement counter and an idle profiler, see below), DEBUG off, PostgreSQL and Redis on the same box, "
        f"`DB_CONN_MAX_AGE={conn_max_age if conn_max_age is not None else 'unset (0)'}`; response cache and rate limits "
        "off (runtime flags) so every answer streams from upstream."
    )
    w(
        "- Upstream: the provider emulator, time to first token 200 ms, then 50 chunks 10 ms apart "
        "(`python -m providers.emulator --ttft-ms 200 --chunk-ms 10 --chunks 50`), OpenAI-compatible wire."
    )
    w(
        "- Load: one asyncio client process (httpx2 for HTTP, websockets for the page socket), everything on loopback. "
        "*Direct* streams the same chat completion straight from the emulator with the same client library."
    )
    w(
        "- The floor: the *bare relay* (`bench/relay.py`), the smallest Django ASGI view that relays the same "
        "stream with the `openai` SDK (one module-level `AsyncOpenAI` with the options Chimera's adapter uses: "
        "no SDK retries, 60 s / 5 s connect timeouts, the SDK's own httpx2 client; chunks read the ordinary SDK "
        "way), under its own daphne process (same version, same command line), no database, no auth, no "
        "middleware. It answers the request the benchmark sends Chimera's API with the same AI SDK UI message "
        "stream parts (`start`, one `text-delta` per upstream chunk, `finish`, `[DONE]`), parsed by the same client."
    )
    if sse_note:
        w(f"- **SSE not measured in this run:** {sse_note}")
    w("")
    w("Reproduce (after the README's setup, with Postgres on 127.0.0.1:5432 and Redis on 127.0.0.1:6379):\n")
    w(
        "```\nmake bench                          # this report, about 6-8 minutes\n"
        "make bench BENCH_ARGS=--quick       # a smoke run: a few requests, no report\n"
        ".venv/bin/python bench/run.py --help\n```\n"
    )

    # ---- summary against targets
    st200 = level_stats(stability, sides, tokens) if stability is not None else None
    layout = results.get("layout")
    out.extend(
        targets_table(stats, st200, stability.concurrency if stability else 0, chimera_sides, layout, tokens)
    )
    if layout is not None:
        out.extend(layout_section(layout, tokens))
    if results.get("servers") is not None:
        out.extend(servers_section(servers_stats(results["servers"], tokens)))

    # ---- latency tables
    w("## Time to first token and total time\n")
    w(
        "TTFT is measured from the request leaving the client to the first piece of answer text arriving "
        "(for the page: the first `beforeend:#mc-…` fragment; for SSE and the relay: the first `text-delta` part). "
        "*Added* is a side's percentile minus direct's at the same concurrency in the same run; *vs relay* is "
        "Chimera's p95 minus the bare relay's; the ratios are p95 ÷ direct's and p95 ÷ the relay's.\n"
    )
    for c, st in stats.items():
        w(f"### Concurrency {c}\n")
        w(
            "| side | answers | errors | TTFT p50 | p95 | p99 | added p50 | added p95 | added p99 | ratio p95 "
            "| vs relay p95 | ÷ relay p95 "
            "| total p50 | total p95 | added total p95 | token interval | added | max gap p95 | answers/s |"
        )
        w("|---|" + "---:|" * 18)
        d = st["direct"]
        r = st.get("relay")
        for side in sides:
            s = st[side]
            added = [s["ttft"][q] - d["ttft"][q] for q in (50, 95, 99)]
            ratio = _ratio(s["ttft"][95], d["ttft"][95])
            is_direct = side == "direct"
            if r is None or side in ("direct", "relay"):
                vs_relay = " - | - |"
            else:
                vs_relay = f" **{_signed(s['ttft'][95] - r['ttft'][95])}** | {_f(_ratio(s['ttft'][95], r['ttft'][95]), 3)} |"
            w(
                f"| {SIDE_NAMES[side]} | {s['n']} | {s['errors']} | {_f(s['ttft'][50])} | {_f(s['ttft'][95])} "
                f"| {_f(s['ttft'][99])} | "
                + (
                    " - | - | - | - |"
                    if is_direct
                    else f" {_signed(added[0])} | **{_signed(added[1])}** | {_signed(added[2])} | {_f(ratio, 3)} |"
                )
                + vs_relay
                + f" {_f(s['total'][50])} | {_f(s['total'][95])} | "
                + ("-" if is_direct else _signed(s["total"][95] - d["total"][95]))
                + f" | {_f(s['interval'], 2)} | "
                + ("-" if is_direct else _signed(s["interval"] - d["interval"]))
                + f" | {_f(s['max_gap_p95'])} | {_f(s['rps'])} |"
            )
        w("")
    w(
        "Times in ms. *Token interval*: median over answers of (last text arrival - first) / 49, i.e. the "
        "mean time between tokens once streaming; *max gap p95*: the 95th percentile of the longest pause "
        "between two arrivals within an answer. The page receives several tokens per frame when they queue up "
        "(it never delays a frame to batch them), so its arrival count can be below 50.\n"
    )

    # ---- CPU, memory, queries
    w("## CPU, memory and database work per answer\n")
    w(
        "CPU is utime + stime from `/proc/<pid>/stat` (all threads) of the daphne that serves the side (the "
        "relay's own daphne for the relay, Chimera's for the others; for *direct* it is Chimera's daphne idling) "
        "across each side's phases, divided by the answers streamed; Chimera's includes every database write of "
        "the turn (made from daphne), not the Postgres and Redis servers' own CPU. *÷ relay* is Chimera's CPU per "
        "answer divided by the bare relay's at the same concurrency. Statements are counted in Chimera's daphne "
        "by a Django `execute_wrapper` (every SQL statement sent, BEGIN/COMMIT/SAVEPOINT included; the relay has "
        "no database). Opening the page's WebSocket (session and user lookup) happens before each phase and is "
        "not counted: a tab opens its socket once.\n"
    )
    w("| side | concurrency | CPU ms / answer | ÷ relay | SQL statements / turn | by kind |")
    w("|---|---:|---:|---:|---:|---|")
    for c, st in stats.items():
        relay_cpu = st["relay"]["cpu_ms"] if "relay" in st else float("nan")
        for side in sides:
            s = st[side]
            kinds = ", ".join(f"{k} {v:.1f}" for k, v in s["queries"].items() if v >= 0.05) or "-"
            share = _f(_ratio(s["cpu_ms"], relay_cpu), 2) if side in chimera_sides else "-"
            sql = "-" if side == "relay" else _f(s["queries_total"])  # direct: Chimera's daphne between turns
            w(f"| {SIDE_NAMES[side]} | {c} | {_f(s['cpu_ms'])} | {share} | {sql} | {kinds} |")
    w("")
    if pg:
        w(
            f"Server side (PostgreSQL `pg_stat_database` for the benchmark database, whole run ÷ {pg['turns']} "
            f"Chimera turns): {pg['xact_commit']:.1f} transactions committed, {pg['tup_inserted']:.1f} rows "
            f"inserted, {pg['tup_updated']:.1f} rows updated, {pg['tup_fetched']:.1f} rows fetched per turn.\n"
        )

    if stability is not None and st200 is not None:
        st = st200
        w(f"## {stability.concurrency} concurrent streams (all started at once)\n")
        w(
            "| side | answers | errors | lost/duplicated tokens | not streamed (arrived whole) | TTFT p50 | TTFT p95 "
            "| total p95 | CPU ms / answer | daphne RSS per open stream |"
        )
        w("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for side in sides:
            s = st[side]
            mem = "-" if side == "direct" else f"{_f(s['mem_kib_per_stream'])} KiB ({s['max_open']} open)"
            w(
                f"| {SIDE_NAMES[side]} | {s['n']} | {s['errors']} | {s['mismatched']} | {s['whole']} | {_f(s['ttft'][50])} "
                f"| {_f(s['ttft'][95])} | {_f(s['total'][95])} | {_f(s['cpu_ms'])} | {mem} |"
            )
        w("")
        w(
            "Every answer's text is compared with what the emulator sends for that prompt (it is deterministic): "
            "a lost, duplicated or reordered token makes the answer count as an error. *Not streamed*: on the page, "
            "answers whose turn finished before the socket had subscribed (the consumer subscribes before its first "
            "frame, so this should stay 0), so the page got the whole answer at the end; their TTFT is their total time. RSS per open stream is "
            "(the side's daphne's peak RSS while the most streams were open - its RSS before the phase) ÷ streams "
            "open; for the relay, the relay's own daphne.\n"
        )

    # ---- profile
    if profiles:
        w("## Profile of a turn\n")
        for side, (summary, turns, path) in profiles.items():
            if summary.get("tool", "").startswith("py-spy"):
                rate = summary["rate"]
                per = 1000 / rate / turns  # ms per sample per turn
                w(
                    f"### {SIDE_NAMES[side]}: {turns} turns at concurrency 10, "
                    f"{summary['samples'] * per:.1f} ms of GIL-holding time per turn\n"
                )
                w(
                    f"py-spy sampling daphne at {rate} Hz, only threads holding the GIL (`--gil`): the event loop "
                    "and the `sync_to_async` database thread alike. Raw stacks: "
                    f"[{path}]({path}) (collapsed format: feed it to flamegraph.pl or speedscope).\n"
                )
                w("| where the time goes | ms / turn | share |")
                w("|---|---:|---:|")
                for name, n in summary["by_cost"]:
                    w(f"| {name} | {n * per:.2f} | {n / summary['samples']:.0%} |")
                w("")
                w("| Chimera function (inclusive) | ms / turn |")
                w("|---|---:|")
                for name, n in summary["ours"][:12]:
                    w(f"| `{name}` | {n * per:.2f} |")
                w("")
                w("| hottest leaf functions (self) | ms / turn |")
                w("|---|---:|")
                for name, n in summary["by_leaf"][:10]:
                    w(f"| `{name}` | {n * per:.2f} |")
                w("")
            else:
                busy = sum(t for _, t in summary["by_package"]) or 1
                w(
                    f"### {SIDE_NAMES[side]}: {turns} turns, {busy * 1000 / turns:.2f} ms of event-loop time per "
                    f"turn (full tree: [{path}]({path}))\n"
                )
                w(
                    "pyinstrument on daphne's event-loop thread only (py-spy is not installed): the database calls "
                    "made through `sync_to_async` are not in these samples.\n"
                )
                w("| package (self time) | ms / turn |")
                w("|---|---:|")
                for name, t in summary["by_package"][:10]:
                    w(f"| {name} | {t * 1000 / turns:.2f} |")
                w("")

    tool_step = results.get("tool_step")
    if tool_step:
        w("## A tool step\n")
        w(
            "What one tool call adds to a turn, beyond a plain turn, with the upstream's time and the "
            "tool's own run time taken out (bench/tools.py: plain and tool turns alternate, one at a "
            "time; the tool is executeCode printing one line).\n"
        )
        w("| transport | turns | added p50 | added p95 | added CPU per tool step | the tool ran (excluded) |")
        w("|---|---|---|---|---|---|")
        for side, t in tool_step.items():
            w(
                f"| {SIDE_NAMES.get(side, side)} | {t['turns']} | {t['added_ms']['p50']:.1f} ms | "
                f"{t['added_ms']['p95']:.1f} ms | {t['added_cpu_ms']:.1f} ms | {t['tool_run_ms']['p50']:.0f} ms |"
            )
        w("")
    cache_hit = results.get("cache_hit")
    if cache_hit:
        w("## A cache hit\n")
        w(
            "A prompt asked twice with the response cache on (bench/cache_hits.py): the hit calls no "
            "provider, so its whole time to first token is Chimera's (target p95 ≤ 20 ms); then the "
            "stored answer is replayed in its original pieces, at most 10 ms apart.\n"
        )
        w("| rounds | hit TTFT p50 | hit TTFT p95 | hit, whole answer p95 | the miss before it, TTFT p50 |")
        w("|---|---|---|---|---|")
        w(
            f"| {cache_hit['rounds']} | {cache_hit['hit_ttft_ms']['p50']:.1f} ms | "
            f"{cache_hit['hit_ttft_ms']['p95']:.1f} ms | {cache_hit['hit_total_ms']['p95']:.0f} ms | "
            f"{cache_hit['miss_ttft_ms']['p50']:.0f} ms |"
        )
        w("")
    w("## What was changed to meet the targets\n")
    w(changes.strip() + "\n")
    w("## Method\n")
    w(
        "- Phases alternate direct → bare relay → page socket → SSE, round after round, at each concurrency, in one session; the "
        "percentiles pool every round of a side. *c* workers each send requests one after another; their starts are "
        "staggered over one answer's duration (0.7 s) so about *c* streams are open at any time. The "
        "200-stream check starts all streams at once."
    )
    w(
        "- Each page-socket worker is one logged-in tab: a session cookie, an `Origin` header, htmx-shaped JSON "
        '(`{"action": "send", "message": …, "tier": "balanced", "conversation_id": ""}`), a new '
        'conversation per turn. The answer is complete at the frame carrying `data-testid="message-complete"`.'
    )
    w(
        "- SSE requests carry a Bearer API key (`create_api_key`) and the spec's body "
        '(`{"messages": [{"role": "user", "content": …}], "config": {"model": "balanced"}}`).'
    )
    w(
        "- Absolute times on a 2-core box are noisy (the load generator, the emulator, Postgres and daphne share the "
        "two cores); compare ratios and differences within one run. At concurrency 1 each side has few samples, "
        "so p99 is close to the maximum."
    )
    w(
        "- The harness: `bench/run.py` (entry, options), `bench/services.py` (starting the stack), `bench/clients.py` "
        "(the clients), `bench/harness.py` (phases, measurements), `bench/report.py` (this file), "
        "`bench/asgi.py` (the probes), `bench/relay.py` (the bare relay), `bench/layout.py` and `bench/servers.py` "
        "(the production layout, the ASGI servers). `tests/bench/test_bench_smoke.py` runs `--quick` in the test suite."
    )
    return "\n".join(out) + "\n"


def now_utc() -> datetime:
    return datetime.now(UTC)
