"""The orphan sweep: answers whose process died are settled with nobody watching.

Every web process runs it, in a daemon thread started with the ASGI application (chimera/asgi.py),
so it works in every layout — ``make run``, the Procfile, several web processes behind one database,
with or without a Celery beat — and it starts working when the process starts. Every half heartbeat
it settles the answers untouched for three heartbeats (``store.settle_orphans``: their text, a
retryable error part, and their usage rows from the last checkpoint), sparing the answers this
process is writing. Any number of processes can sweep at once: each answer is settled by one.

A thread rather than an asyncio task: it needs no event loop of the server's (daphne creates its
own, uvicorn and granian theirs), and its few queries stay off the loop that streams tokens.
"""

from __future__ import annotations

import logging

from django.conf import settings

from chimera.ticker import Ticker

log = logging.getLogger(__name__)


def sweep_once() -> int:
    """Settle the orphans now; how many were settled."""
    from chat.turns import settle_orphans

    return settle_orphans()


def _tick() -> None:
    settled = sweep_once()
    if settled:
        log.warning("settled %d answer(s) whose server process had stopped", settled)


# A failed round (a database blip) is logged by the ticker; the next one tries again.
_ticker = Ticker("chimera-orphan-sweep", _tick, lambda: settings.CHIMERA_HEARTBEAT_S / 2)


def start() -> bool:
    """Start this process's sweep (once); False when CHIMERA_SWEEP_ORPHANS is off."""
    if not settings.CHIMERA_SWEEP_ORPHANS:
        return False
    _ticker.start()
    return True


def stop() -> None:
    _ticker.stop()
