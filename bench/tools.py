"""The added latency of a tool step: what a turn with one tool call costs beyond a plain turn, with
the upstream's own time and the tool's own run time taken out.

A tool turn is two provider calls (the model asks for ``executeCode``, then answers with its
result) and one tool run; a plain turn is one provider call. For each turn:

    overhead = wall time - sum(upstream time of each provider call) - the tool's durationMs

where a provider call's upstream time is what the emulator spends on it by construction (its time
to first token, then one chunk interval per further token: ``ttft + chunk * (tokens - 1)``, tokens
from its request log). The tool step adds ``overhead(tool turn) - overhead(plain turn)``: the second
provider call's set-up, running the tool machinery (validation, time limit, persistence of the
invocation, the tool parts on the wire) and the extra database work. Tool and plain turns alternate,
one at a time, on the API (SSE) and the page (WebSocket), the plain turn's answer made as long as the
tool turn's final answer (both relay the same amount of text); daphne's CPU is read around each turn.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from statistics import median

import httpx2

from bench.harness import CLK_TCK, percentile
from bench.services import Stack

CODE = {"language": "python", "code": "print(6 * 7)"}
QUESTION = "Work out six times seven"


async def _emulator_calls(client: httpx2.AsyncClient, stack: Stack) -> tuple[float, list[int]]:
    """The upstream time of the provider calls logged since the last clear, and each call's tokens."""
    log = (await client.get(stack.emulator_url + "/_control/requests")).json()["requests"]
    tokens = [r["outcome"]["tokens_sent"] for r in log if r.get("body") is not None]
    total = sum(stack.ttft_ms + stack.chunk_ms * max(0, n - 1) for n in tokens if n)
    return total, tokens


def _tool_ms(stack: Stack, message_id: str) -> float:
    import psycopg

    with psycopg.connect(stack.database_url, autocommit=True) as conn:
        row = conn.execute("select tool_invocations from messages where id = %s", (message_id,)).fetchone()
    calls = (row[0] if row else None) or []
    return float(sum(c.get("durationMs") or 0 for c in calls))


async def _sse_turn(client: httpx2.AsyncClient, stack: Stack, with_tool: bool) -> tuple[float, str]:
    content = f"{QUESTION} [[tool:executeCode {json.dumps(CODE)}]]" if with_tool else QUESTION
    body = {"messages": [{"role": "user", "content": content}], "config": {"model": "balanced"}}
    if with_tool:
        body["config"]["tools"] = ["executeCode"]
    t0 = time.perf_counter()
    message_id = ""
    async with client.stream(
        "POST", stack.url + "/api/chat/v2", json=body, headers={"Authorization": f"Bearer {stack.api_key}"}
    ) as response:
        if response.status_code != 200:
            raise RuntimeError(f"HTTP {response.status_code}: {(await response.aread())[:200]!r}")
        async for line in response.aiter_lines():
            if line.startswith("data: {") and not message_id:
                message_id = json.loads(line[6:]).get("messageId", "")
            if line == "data: [DONE]":
                break
    return (time.perf_counter() - t0) * 1000, message_id


async def _ws_turn(ws, with_tool: bool) -> tuple[float, str]:
    content = f"{QUESTION} [[tool:executeCode {json.dumps(CODE)}]]" if with_tool else QUESTION
    message = {
        "action": "send",
        "message": content,
        "tier": "balanced",
        "conversation_id": "",
        "HEADERS": {"HX-Request": "true"},
    }
    if with_tool:
        message["tools"] = ["executeCode"]
    t0 = time.perf_counter()
    await ws.send(json.dumps(message))
    message_id = ""
    async with asyncio.timeout(60):
        while True:
            frame = await ws.recv()
            if not message_id:
                found = re.search(r'id="turn-status"[^>]*data-message-id="([0-9a-f-]{36})"', frame)
                message_id = found.group(1) if found else ""
            if 'data-state="idle"' in frame:
                if 'data-testid="message-complete"' not in frame:
                    raise RuntimeError("a bench turn did not complete")
                break
    return (time.perf_counter() - t0) * 1000, message_id


async def tool_step(stack: Stack, rounds: int, log=print) -> dict:
    """Alternate plain and tool turns on both transports; the tool step's added latency and CPU."""
    from websockets.asyncio.client import connect

    out: dict = {}
    async with httpx2.AsyncClient(timeout=60) as client:
        ws = await connect(
            stack.url.replace("http://", "ws://") + "/ws/chat/",
            additional_headers={"Origin": stack.url, "Cookie": f"sessionid={stack.session}"},
            max_size=None,
            ping_interval=None,
        )
        try:
            for side in ("sse", "ws"):
                overhead: dict[bool, list[float]] = {False: [], True: []}
                cpu: dict[bool, list[float]] = {False: [], True: []}
                tool_ms: list[float] = []
                for r in range(rounds + 1):  # the first round warms up and is not counted
                    answer_tokens = 0
                    for with_tool in (True, False):
                        # The plain turn's answer is as long as the tool turn's final answer, so the
                        # difference is the tool step, not a different amount of text to relay.
                        await client.delete(stack.emulator_url + "/_control/faults")  # timing overrides too
                        if not with_tool:
                            await client.post(
                                stack.emulator_url + "/_control/timing",
                                json={"provider": "*", "chunks": answer_tokens},
                            )
                        await client.delete(stack.emulator_url + "/_control/requests")
                        ticks = stack.cpu_ticks()
                        if side == "sse":
                            wall, message_id = await _sse_turn(client, stack, with_tool)
                        else:
                            wall, message_id = await _ws_turn(ws, with_tool)
                        await asyncio.sleep(0.05)  # the turn's last write is done before its last frame
                        used = (stack.cpu_ticks() - ticks) * 1000 / CLK_TCK
                        upstream, tokens = await _emulator_calls(client, stack)
                        if len(tokens) != (2 if with_tool else 1):
                            raise RuntimeError(
                                f"expected {2 if with_tool else 1} provider calls, saw {tokens}"
                            )
                        if with_tool:
                            answer_tokens = tokens[-1]
                        ran = await asyncio.to_thread(_tool_ms, stack, message_id) if with_tool else 0.0
                        if r == 0:
                            continue
                        overhead[with_tool].append(wall - upstream - ran)
                        cpu[with_tool].append(used)
                        if with_tool:
                            tool_ms.append(ran)
                await client.delete(stack.emulator_url + "/_control/faults")
                plain = overhead[False]
                added = [t - p for t, p in zip(overhead[True], plain, strict=True)]
                out[side] = {
                    "turns": rounds,
                    "plain_overhead_ms": {"p50": median(plain), "p95": percentile(plain, 95)},
                    "tool_overhead_ms": {
                        "p50": median(overhead[True]),
                        "p95": percentile(overhead[True], 95),
                    },
                    "added_ms": {"p50": median(added), "p95": percentile(added, 95)},
                    "tool_run_ms": {"p50": median(tool_ms), "p95": percentile(tool_ms, 95)},
                    "added_cpu_ms": sum(cpu[True]) / rounds - sum(cpu[False]) / rounds,
                }
                s = out[side]
                log(
                    f"  tool step {side:4}: added p50 {s['added_ms']['p50']:6.1f} ms, p95 "
                    f"{s['added_ms']['p95']:6.1f} ms; added CPU {s['added_cpu_ms']:5.1f} ms "
                    f"(the tool itself ran {s['tool_run_ms']['p50']:.0f} ms, excluded)"
                )
        finally:
            await ws.close()
    return out
