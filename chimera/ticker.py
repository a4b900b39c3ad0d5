"""A daemon thread that does one piece of background work every few seconds, in every web process.

The orphan sweep (chat/sweep.py) and the background schedule (usage/schedule.py) run this way: started
with the ASGI application, so they work in every layout (``make run``, the Procfile, several web
processes behind one database), with no event loop of the server's (daphne, uvicorn and granian each
have their own) and with their queries off the loop that streams tokens. A tick that fails (a
database blip) is logged and the next one tries again; the thread's connections are closed around
each tick.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from django.db import close_old_connections

log = logging.getLogger(__name__)


class Ticker:
    def __init__(
        self,
        name: str,
        tick: Callable[[], object],
        interval_s: Callable[[], float],
        *,
        database: bool = True,
    ) -> None:
        self.name = name
        self.tick = tick
        self.interval_s = interval_s  # read at each wait: settings may change in tests
        # False for a tick that never touches the database (a Redis read): its thread then has no
        # connections to look after, and skips doing so twice a tick.
        self.database = database
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()

    def start(self) -> None:
        """Start the thread, once (again if it died)."""
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._stop.clear()
                self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
                self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while True:
            try:
                if self.database:
                    close_old_connections()
                self.tick()
            except Exception:
                log.exception("%s failed; trying again in %s s", self.name, self.interval_s())
            finally:
                if self.database:
                    close_old_connections()
            if self._stop.wait(self.interval_s()):
                return
