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
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import InterfaceError, OperationalError, connections
from django.db.backends.signals import connection_created
from django.dispatch import receiver

T = TypeVar("T")
_executor: dict[str, ThreadPoolExecutor] = {}
_wrappers: set[Any] = set()  # each pool thread's connection wrapper, to close them at shutdown
_last_used = threading.local()  # when this pool thread's connection last ran a job
# A connection idle longer than this is checked before a job that must not be retried.
IDLE_CHECK_S = 30.0
THREAD_PREFIX = "chimera-db"
APPLICATION_NAME = "chimera-turns"


def _pool() -> ThreadPoolExecutor:
    pool = _executor.get("pool")
    if pool is None:
        sqlite = settings.DATABASES["default"]["ENGINE"].endswith("sqlite3")
        # SQLite has one writer at a time: more threads would only queue on its lock.
        workers = 1 if sqlite else settings.CHIMERA_DB_THREADS
        pool = _executor["pool"] = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=THREAD_PREFIX)
    return pool


def _with_fresh_connection(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """An idempotent job: if the connection turns out dead, reconnect and run it once more."""
    connection = _connection()
    try:
        return fn(*args, **kwargs)
    except (OperationalError, InterfaceError):
        if connection.in_atomic_block:
            raise
        # The server went away (restart, idle timeout): reconnect once, then let it fail loudly.
        connection.close()
        return fn(*args, **kwargs)
    finally:
        _last_used.at = time.monotonic()


def _once(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """A job that must not run twice (it counts or inserts): never re-run after a failure, whose
    commit may or may not have happened. A connection idle for a while is checked first instead, so
    a server that went away meanwhile costs a reconnect rather than a failed turn."""
    connection = _connection()
    if (
        connection.connection is not None
        and time.monotonic() - getattr(_last_used, "at", 0.0) > IDLE_CHECK_S
        and not connection.is_usable()
    ):
        connection.close()
    try:
        return fn(*args, **kwargs)
    finally:
        _last_used.at = time.monotonic()


def _connection():
    connection = connections["default"]
    _wrappers.add(connection)
    if connection.connection is not None and connection.errors_occurred:
        connection.close()  # the last job broke it: start over rather than fail again
    return connection


@receiver(connection_created)
def _name_pool_connections(sender, connection, **kwargs) -> None:
    """The pool's connections say what they are in pg_stat_activity (operations, and the tests
    that cut them)."""
    if connection.vendor == "postgresql" and threading.current_thread().name.startswith(THREAD_PREFIX):
        with connection.cursor() as cursor:
            cursor.execute("SET application_name = %s", [APPLICATION_NAME])


async def run(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run ``fn`` (sync ORM code, safe to repeat) on the pool and await its result."""
    call = functools.partial(_with_fresh_connection, fn, *args, **kwargs)
    return await sync_to_async(call, thread_sensitive=False, executor=_pool())()


async def run_once(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``run`` for a job that is not safe to repeat (never retried; see ``_once``)."""
    call = functools.partial(_once, fn, *args, **kwargs)
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
