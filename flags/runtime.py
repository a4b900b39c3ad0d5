"""Runtime flags (the spec's Edge Config): the switches for instant rollback.

Read on the hot path, so they are cached in process for ``TTL`` seconds and
keyed by a version number in the shared cache: saving the flags bumps the
version and every process picks the change up on its next read after the TTL. While the shared
cache (Redis) is unreachable, the stored row is read once per TTL instead.

Each web process also checks the version in the background every half TTL (``start``, with the
ASGI application): while it is unchanged, the copy stays fresh and no turn waits on that read
(a Redis round trip, about 1 ms inside the server, was on one turn in two before). A change
still reaches every process within the TTL: the check only ever extends a copy whose version it
has just read, and a changed version leaves the copy stale for the next read to load.
"""

from __future__ import annotations

import copy
import logging
import threading
import time
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.cache import cache
from django.db import transaction

from chimera.ticker import Ticker
from flags.schema import FlagsInvalid, check

DEFAULTS: dict[str, Any] = {
    "enableStreaming": True,
    "enableAIGateway": True,
    "enableCaching": True,
    "enableFailover": True,
    "providers": {"primary": "groq", "fallback": "google", "disabled": []},
    "rateLimit": {"enabled": True, "freeLimit": None, "proLimit": None, "freeBurst": None, "proBurst": None},
}

log = logging.getLogger(__name__)

TTL = 2.0
_VERSION_KEY = "chimera:flags:version"
_local: dict[str, Any] = {"at": 0.0, "version": None, "value": None}
_lock = threading.Lock()  # the copy's value, version and time change together


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in (override or {}).items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _defaults() -> dict[str, Any]:
    value = copy.deepcopy(DEFAULTS)
    value["rateLimit"]["freeLimit"] = settings.CHIMERA_RATE_LIMIT_FREE
    value["rateLimit"]["proLimit"] = settings.CHIMERA_RATE_LIMIT_PRO
    value["rateLimit"]["freeBurst"] = settings.CHIMERA_RATE_LIMIT_BURST_FREE
    value["rateLimit"]["proBurst"] = settings.CHIMERA_RATE_LIMIT_BURST_PRO
    return value


def get_flags() -> dict[str, Any]:
    """The current flags (defaults merged with the stored row). Callers must not mutate."""
    now = time.monotonic()
    value = _local["value"]
    if value is not None and now - _local["at"] < TTL:
        return value
    try:
        version = cache.get(_VERSION_KEY, 0)
    except Exception as exc:  # Redis unreachable: read the row each TTL instead of on change
        _warn(exc)
        version = object()  # never equal: re-read
    if value is None or version != _local["version"]:
        from flags.models import RuntimeFlags

        row = RuntimeFlags.objects.filter(pk=1).first()
        value = _merge(_defaults(), row.value if row else {})
        # Not a stored flag: the providers an open degradation incident takes out of the routes
        # (usage/alerts.py), read here so every process learns of them as it learns of a flag change.
        from usage.alerts import degraded_providers

        value["providers"]["degraded"] = degraded_providers()
        with _lock:
            _local.update(value=value, version=version, at=now)
        return value
    with _lock:
        if _local["value"] is value:
            _local["at"] = max(_local["at"], now)
    return value


def _confirm() -> None:
    """The background check: the version unchanged, this process's copy is fresh for another TTL.
    A changed version (or no answer from the cache) leaves the copy to go stale, so the next
    ``get_flags`` loads it as before; the check itself never reads the row (no connection of its own)."""
    if _local["value"] is None:
        return
    now = time.monotonic()
    try:
        version = cache.get(_VERSION_KEY, 0)
    except Exception:  # the next get_flags reads the row and says why
        return
    with _lock:
        if _local["value"] is not None and version == _local["version"]:
            _local["at"] = max(_local["at"], now)


_ticker = Ticker("chimera-flags", _confirm, lambda: TTL / 2, database=False)


def start() -> None:
    """Keep this process's copy fresh in the background (every web process, chimera/asgi.py)."""
    _ticker.start()


def stop() -> None:
    _ticker.stop()


async def aget_flags() -> dict[str, Any]:
    if _local["value"] is not None and time.monotonic() - _local["at"] < TTL:
        return _local["value"]
    return await sync_to_async(get_flags)()


def set_flags(
    value: dict[str, Any], *, by=None, source: str = "code", replace: bool = False
) -> dict[str, Any]:
    """Store the flags (merged over what is stored, or with ``replace`` instead of it) once the
    schema accepts the result (``schema.FlagsInvalid`` otherwise), record who changed what, and make
    every process see them (within TTL seconds)."""
    from flags.models import FlagChange, RuntimeFlags

    if not isinstance(value, dict):
        raise FlagsInvalid([("(flags)", "must be a JSON object")])
    with transaction.atomic():
        row, _ = RuntimeFlags.objects.select_for_update().get_or_create(pk=1)
        before = row.value if isinstance(row.value, dict) else {}
        after = value if replace else _merge(before, value)
        check_stored(after)
        if isinstance(after.get("providers"), dict) and "degraded" in after["providers"]:
            after = {**after, "providers": {k: v for k, v in after["providers"].items() if k != "degraded"}}
        row.value = after
        row.save()
        FlagChange.objects.create(changed_by=by, source=source, before=before, after=after)
    invalidate()
    return get_flags()


def check_stored(value: Any) -> None:
    """Whether ``value`` may be stored: the defaults with it merged over them pass the schema."""
    if not isinstance(value, dict):
        raise FlagsInvalid([("(flags)", "must be a JSON object")])
    check(_merge(_defaults(), value))


def invalidate() -> None:
    try:
        try:
            cache.incr(_VERSION_KEY)
        except ValueError:
            cache.set(_VERSION_KEY, 1, None)
    except Exception as exc:  # Redis unreachable: other processes see the change within their TTL
        _warn(exc)
    with _lock:
        _local.update(at=0.0, value=None, version=None)


def _warn(exc: BaseException) -> None:
    now = time.monotonic()
    if now - _local.get("warned_at", -60.0) >= 60:
        _local["warned_at"] = now
        log.warning("flags: the cache is unreachable (%s); reading the stored flags every %s s", exc, TTL)
