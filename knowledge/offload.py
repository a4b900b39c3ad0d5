"""Run knowledge work (embedding, then a few queries) for async callers, off the event loop.

Embedding is CPU work (milliseconds per query, tens per passage) and the searches are ORM queries:
both run on a small pool of threads of their own, each keeping one database connection, so neither
the event loop nor the turn's own database threads (chat/db.py) wait behind a model run.
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
_pools: dict[str, ThreadPoolExecutor] = {}
_wrappers: set[Any] = set()  # each pool thread's connection wrapper, to close them at shutdown


def _pool() -> ThreadPoolExecutor:
    pool = _pools.get("pool")
    if pool is None:
        workers = max(1, settings.CHIMERA_KNOWLEDGE_THREADS)
        pool = _pools["pool"] = ThreadPoolExecutor(
            max_workers=workers, thread_name_prefix="chimera-knowledge"
        )
    return pool


def _call(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    connection = connections["default"]
    _wrappers.add(connection)
    if connection.connection is not None and connection.errors_occurred:
        connection.close()  # the last job broke it: start over rather than fail again
    try:
        return fn(*args, **kwargs)
    except (OperationalError, InterfaceError):
        if connection.in_atomic_block:
            raise
        connection.close()  # the server went away (restart, idle timeout): reconnect once
        return fn(*args, **kwargs)


async def run(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run ``fn`` (sync code: the model, the ORM) on the knowledge threads and await its result."""
    call = functools.partial(_call, fn, *args, **kwargs)
    return await sync_to_async(call, thread_sensitive=False, executor=_pool())()


def close_all() -> None:
    """Stop the threads and close their connections (tests, before the test database is dropped)."""
    pool = _pools.pop("pool", None)
    if pool is not None:
        pool.shutdown(wait=True)
    for wrapper in list(_wrappers):
        raw = wrapper.connection
        if raw is not None:
            raw.close()  # the raw driver connection: the wrapper's thread is gone
        _wrappers.discard(wrapper)
