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
import threading

from django.conf import settings
from django.db import close_old_connections

log = logging.getLogger(__name__)

_started: dict[str, threading.Thread] = {}
_lock = threading.Lock()
_stop = threading.Event()


def start() -> bool:
    """Start this process's sweep (once); False when CHIMERA_SWEEP_ORPHANS is off."""
    if not settings.CHIMERA_SWEEP_ORPHANS:
        return False
    with _lock:
        thread = _started.get("t")
        if thread is None or not thread.is_alive():
            _stop.clear()
            thread = _started["t"] = threading.Thread(target=_run, name="chimera-orphan-sweep", daemon=True)
            thread.start()
    return True


def stop() -> None:
    _stop.set()


def sweep_once() -> int:
    """Settle the orphans now; how many were settled."""
    from chat.turns import settle_orphans

    try:
        close_old_connections()
        return settle_orphans()
    except Exception:  # a database blip: the next round tries again
        log.exception("the orphan sweep failed; trying again in %s s", settings.CHIMERA_HEARTBEAT_S / 2)
        return 0
    finally:
        close_old_connections()


def _run() -> None:
    interval = settings.CHIMERA_HEARTBEAT_S / 2
    while True:
        settled = sweep_once()
        if settled:
            log.warning("settled %d answer(s) whose server process had stopped", settled)
        if _stop.wait(interval):
            return
