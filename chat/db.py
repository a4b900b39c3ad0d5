"""A small, fixed pool of threads for the turn's database work.

Django runs an async request's ORM calls on a thread of that request's own
(ThreadSensitiveContext), which opens a database connection per request and a
thread per request, and holds the connection as long as the response streams:
200 open streams would need 200 Postgres connections. Turn work (the first
writes, checkpoints, the final write, usage rows) goes through this pool
instead: a few threads, each keeping one connection open for good.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import InterfaceError, OperationalError, connections

T = TypeVar("T")
_executor: dict[str, ThreadPoolExecutor] = {}
_wrappers: set[Any] = set()  # each pool thread's connection wrapper, to close them at shutdown


def _pool() -> ThreadPoolExecutor:
    pool = _executor.get("pool")
    if pool is None:
        sqlite = settings.DATABASES["default"]["ENGINE"].endswith("sqlite3")
        # SQLite has one writer at a time: more threads would only queue on its lock.
        workers = 1 if sqlite else settings.CHIMERA_DB_THREADS
        pool = _executor["pool"] = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="chimera-db")
    return pool


def _with_fresh_connection(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    connection = connections["default"]
    _wrappers.add(connection)
    if connection.connection is not None and connection.errors_occurred:
        connection.close()  # the last job broke it: start over rather than fail again
    try:
        return fn(*args, **kwargs)
    except (OperationalError, InterfaceError):
        if connection.in_atomic_block:
            raise
        # The server went away (restart, idle timeout): reconnect once, then let it fail loudly.
        connection.close()
        return fn(*args, **kwargs)


async def run(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run ``fn`` (sync ORM code) on the pool and await its result."""
    call = functools.partial(_with_fresh_connection, fn, *args, **kwargs)
    return await sync_to_async(call, thread_sensitive=False, executor=_pool())()


def close_all() -> None:
    """Close the pool's connections (tests, before dropping the database)."""
    pool = _executor.pop("pool", None)
    if pool is not None:
        pool.shutdown(wait=True)
    for wrapper in list(_wrappers):
        raw = wrapper.connection
        if raw is not None:
            raw.close()  # the raw driver connection: the wrapper belongs to a thread that is gone
        _wrappers.discard(wrapper)
