"""A cache hit's time to first token on the API: the response cache turned on for a moment, each
prompt asked twice (a miss that stores the answer, then the hit), the hit's time to its first text
delta and to its end measured like every other SSE sample. A hit calls no provider, so all of its
time to first token is ours (target p95 ≤ 20 ms); its end comes after the paced replay (the
answer's pieces at most 10 ms apart, under a second). The first prompt warms up and is not counted."""

from __future__ import annotations

import httpx2

from bench import clients
from bench.harness import percentile
from bench.services import Stack


async def cache_hits(stack: Stack, rounds: int, log=print) -> dict:
    stack.set_flags({"enableCaching": True})
    hits, misses = [], []
    try:
        async with httpx2.AsyncClient(timeout=60) as client:
            for i in range(min(rounds, len(clients.PROMPTS))):
                miss = await clients.sse(client, stack.url, stack.api_key, i)
                hit = await clients.sse(client, stack.url, stack.api_key, i)
                if miss.error or hit.error or hit.text != miss.text:
                    raise RuntimeError(f"cache round {i}: {miss.error or hit.error or 'the hit differs'}")
                if i == 0:
                    # The first hit of a process also opens its cache connection and warms the path
                    # (about 100 ms once): a warm-up, not counted, as the tool step's first round.
                    continue
                misses.append(miss)
                hits.append(hit)
    finally:
        stack.set_flags({"enableCaching": False})

    def ms(samples, end: str) -> dict:
        values = [((getattr(s, end) or s.sent) - s.sent) * 1000 for s in samples]
        return {"p50": percentile(values, 50), "p95": percentile(values, 95)}

    out = {
        "rounds": len(hits),
        "hit_ttft_ms": ms(hits, "first"),
        "hit_total_ms": ms(hits, "done"),
        "miss_ttft_ms": ms(misses, "first"),
        "hit_pieces": sum(len(s.arrivals) for s in hits) / max(1, len(hits)),
    }
    log(
        f"cache hits: ttft p50 {out['hit_ttft_ms']['p50']:.1f} ms, p95 {out['hit_ttft_ms']['p95']:.1f} ms; "
        f"whole answer p95 {out['hit_total_ms']['p95']:.0f} ms in {out['hit_pieces']:.0f} reads "
        f"(a miss: ttft p50 {out['miss_ttft_ms']['p50']:.0f} ms)"
    )
    return out
