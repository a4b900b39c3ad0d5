"""The cache's saving, measured: a realistic mix of repeated and new prompts from several people.

    .venv/bin/python bench/cache_workload.py                 # 8 people x 40 messages, per-user cache
    .venv/bin/python bench/cache_workload.py --scope global  # the same, one cache for everyone

The stack is the benchmark's (bench/services.py: the emulator, daphne, PostgreSQL and Redis, both
reset first). Each person's messages follow what chat traffic looks like: most are new questions
(drawn from a pool of common questions with a Zipf-like skew, so some people ask the same ones), and
some repeat that person's own earlier question word for word (asked again after a reload, from
another device, or by a script). Every message goes through ``POST /api/chat/v2`` at the balanced
tier, a few people at a time. The saving is read back from the usage rows, as the dashboard reads
it: what cache hits saved (``saved_cost_usd``) of what every answer would have cost without the cache.
It prints the figure and writes JSON (``--json``); README's cost section quotes it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import time
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx2  # noqa: E402

from bench.services import Stack  # noqa: E402

QUESTIONS = [
    "How do I reset my password?",
    "What is the difference between a list and a tuple in Python?",
    "Summarise the main causes of the French Revolution.",
    "How do I centre a div with CSS?",
    "What are good habits for writing unit tests?",
    "Explain how HTTPS keeps a connection private.",
    "What is a good way to learn a new language as an adult?",
    "How does compound interest work?",
    "Write a polite email asking for a deadline extension.",
    "What is the capital of Australia and why is it not Sydney?",
    "How do vaccines train the immune system?",
    "Explain recursion with a simple example.",
    "What should I pack for a three-day hiking trip?",
    "How do I undo the last git commit?",
    "What is the difference between weather and climate?",
    "Give me a recipe for a quick vegetarian dinner.",
    "How do solar panels turn light into electricity?",
    "What is the best way to prepare for a job interview?",
    "Explain what an API is to a non-programmer.",
    "How much water should an adult drink in a day?",
    "What are the pros and cons of remote work?",
    "How do I write a good commit message?",
    "Why is the sky blue?",
    "How do I make my code review comments kinder?",
    "Explain the difference between RAM and storage.",
    "What is a healthy amount of sleep for a teenager?",
    "How do I ask for a raise?",
    "What does a product manager do?",
    "How do noise-cancelling headphones work?",
    "Translate 'good morning, how are you?' into Spanish.",
]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--users", type=int, default=8)
    p.add_argument("--requests", type=int, default=40, help="messages per person")
    p.add_argument(
        "--repeat", type=float, default=0.25, help="share of a person's messages that repeat their own"
    )
    p.add_argument("--concurrency", type=int, default=4)
    p.add_argument("--scope", choices=("user", "global"), default="user", help="CHIMERA_CACHE_SCOPE")
    p.add_argument("--seed", type=int, default=20261204)
    p.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432/chimera_bench_cache")
    p.add_argument("--redis-url", default="redis://127.0.0.1:6379/6")
    p.add_argument("--json", default=None, help="write the figures here")
    return p.parse_args(argv)


def workload(args) -> list[tuple[int, str]]:
    """(person, message) in the order sent: each person's own sequence, people interleaved."""
    rng = random.Random(args.seed)
    weights = [1 / (rank + 1) ** 1.1 for rank in range(len(QUESTIONS))]
    plans = []
    for person in range(args.users):
        asked: list[str] = []
        for _ in range(args.requests):
            if asked and rng.random() < args.repeat:
                text = rng.choice(asked)
            else:
                text = rng.choices(QUESTIONS, weights)[0]
                if rng.random() < 0.5:  # half the new questions are the person's own wording
                    text = f"{text} (asked by person {person}, #{len(asked)})"
            asked.append(text)
            plans.append((person, text))
    rng.shuffle(plans)  # people interleave; each person's order stays theirs only roughly, as in life
    return plans


def setup(stack: Stack, args) -> list[str]:
    """People with API keys, the cache on and the limits off (in the stack's database)."""
    os.environ.update(stack.env())
    import django

    django.setup()
    from accounts.apikeys import create_api_key
    from accounts.models import User

    keys = []
    for n in range(args.users):
        user, _ = User.objects.get_or_create(username=f"cache-person-{n}")
        keys.append(create_api_key(user, "cache workload")[1])
    stack.set_flags({"enableCaching": True, "rateLimit": {"enabled": False}})
    return keys


async def send_all(stack: Stack, keys: list[str], plan: list[tuple[int, str]], concurrency: int) -> dict:
    queue: asyncio.Queue = asyncio.Queue()
    for item in plan:
        queue.put_nowait(item)
    outcome = {"hit": 0, "miss": 0, "errors": 0}

    async def worker() -> None:
        async with httpx2.AsyncClient(timeout=60) as http:
            while not queue.empty():
                person, text = queue.get_nowait()
                response = await http.post(
                    stack.url + "/api/chat/v2",
                    json={"messages": [{"role": "user", "content": text}], "config": {"model": "balanced"}},
                    headers={"Authorization": f"Bearer {keys[person]}", "Accept": "application/json"},
                )
                if response.status_code != 200:
                    outcome["errors"] += 1
                    continue
                outcome[response.headers.get("x-gateway-cache", "miss")] += 1

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return outcome


def figures() -> dict:
    from django.db.models import Count, Sum

    from usage.dashboard import saving_share
    from usage.models import UsageMetric

    totals = UsageMetric.objects.aggregate(cost=Sum("cost_usd"), saved=Sum("saved_cost_usd"), n=Count("id"))
    cost, saved = totals["cost"] or Decimal(0), totals["saved"] or Decimal(0)
    return {"cost_usd": str(cost), "saved_usd": str(saved), "saving": saving_share(cost, saved)}


def main(argv=None) -> int:
    args = parse_args(argv)
    os.environ["CHIMERA_CACHE_SCOPE"] = args.scope
    stack = Stack(args.database_url, args.redis_url, ttft_ms=20, chunk_ms=1, chunks=40)
    plan = workload(args)
    with stack:
        keys = setup(stack, args)
        started = time.monotonic()
        outcome = asyncio.run(send_all(stack, keys, plan, args.concurrency))
        wall = time.monotonic() - started
        numbers = {
            "scope": args.scope,
            "people": args.users,
            "messages": len(plan),
            "repeat_share": args.repeat,
            "seed": args.seed,
            **outcome,
            **figures(),
            "wall_s": round(wall, 1),
        }
    print(
        f"{numbers['messages']} messages from {args.users} people (cache scope {args.scope}): "
        f"{numbers['hit']} hits, {numbers['miss']} misses, {numbers['errors']} errors; the cache saved "
        f"${Decimal(numbers['saved_usd']):.4f} of ${Decimal(numbers['cost_usd']) + Decimal(numbers['saved_usd']):.4f}"
        f" = {numbers['saving']:.1%} (the spec asks for > 30 %)"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(numbers, indent=1))
    return 1 if numbers["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
