"""Measure the knowledge layer: the embedding model (load, memory, time per text) and search at scale.

    .venv/bin/python bench/knowledge.py                        # SQLite in a temporary file
    DATABASE_URL=postgres://... .venv/bin/python bench/knowledge.py --chunks 10000

Search is timed over one user's synthetic chunks (real passages of text, random unit vectors: the
cost of the similarity scan does not depend on what the vectors say). The user and the chunks are
removed at the end. Prints numbers; asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def median_ms(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--chunks", type=int, nargs="+", default=[1000, 10000], help="chunk counts to search")
    args = parser.parse_args(argv)

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    scratch = None
    if not os.environ.get("DATABASE_URL"):
        scratch = tempfile.mkdtemp(prefix="bench-knowledge-")
        os.environ["SQLITE_PATH"] = str(Path(scratch) / "bench.sqlite3")
    import django

    django.setup()
    import numpy as np
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection

    from accounts.models import User
    from knowledge import embedding
    from knowledge.models import Chunk
    from knowledge.search import search

    call_command("migrate", verbosity=0)

    before = rss_mib()
    started = time.perf_counter()
    embedding.load()
    load_s = time.perf_counter() - started
    after = rss_mib()
    passage = ("Clean and lubricate the chain every 300 kilometres, more often after riding in rain. " * 9)[
        :700
    ]
    query_ms = median_ms(lambda: embedding.embed(["how often should I oil my bike chain"]), 50)
    passage_ms = median_ms(lambda: embedding.embed([passage]), 20)
    tokens = len(embedding._model().tokenizer.encode(passage).ids)
    print(f"model {embedding.MODEL_ID}: load {load_s:.2f} s, RSS +{after - before:.0f} MiB ({after:.0f} MiB)")
    print(f"embedding: query {query_ms:.1f} ms, 700-character passage ({tokens} tokens) {passage_ms:.1f} ms")
    print(f"threads: CHIMERA_EMBEDDING_THREADS={settings.CHIMERA_EMBEDDING_THREADS}")

    rng = np.random.default_rng(7)
    user = User.objects.create_user(f"bench-knowledge-{uuid.uuid4().hex[:8]}")
    try:
        have = 0
        for target in sorted(args.chunks):
            batch = []
            for n in range(have, target):
                vector = rng.standard_normal(embedding.DIMENSIONS).astype(np.float32)
                vector /= np.linalg.norm(vector)
                text = f"Note {n}: " + passage[: 500 + n % 200]
                conversation, message = uuid.uuid4(), uuid.uuid4()
                batch.append(
                    Chunk(
                        user=user,
                        conversation_id=conversation,
                        message_id=message,
                        role="user",
                        ordinal=0,
                        text=text,
                        embedding=embedding.to_bytes(vector),
                    )
                )
            Chunk.objects.bulk_create(batch, batch_size=1000)
            have = target
            search(user.id, "warm up", 5)
            ms = median_ms(lambda: search(user.id, "how often should I oil my bike chain", 5), 15)
            print(f"search over {target:>6} chunks ({connection.vendor}): {ms:.0f} ms median")
    finally:
        user.delete()
        connection.close()
        if scratch:
            shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
