"""Circuit breaker per provider (the spec's "auto-disable provider after 5 consecutive failures").

closed --5 consecutive failures--> open --cooldown--> half-open --probe succeeds--> closed
                                      ^                    |
                                      +---probe fails------+

While open, the router skips the provider (moves it to the end of the route; when every
provider is open it tries them anyway rather than fail closed). Half-open lets exactly one
probe through, claimed atomically, so N processes do not stampede a recovering provider.

Failures the request itself caused (``ProviderError.caused_by_request``: 400, 401, 404, ...)
do not count; timeouts, 5xx, 429 and connection refusals do.

State lives in Redis when ``settings.REDIS_URL`` is set (one hash per provider,
``chimera:breaker:<provider>``, plus a ``:probe`` key), so every process agrees; in
process memory otherwise. Reads are cached in process for ``cache_s`` (default 2 s):
the common case (closed) costs no round trip at all on the hot path; claiming a probe
is one round trip. Each web process also reads the states it has cached again in the background,
every half ``cache_s`` (``start``, with the ASGI application), so a turn finds them fresh however
long ago the last turn was: another process's failures reach it within about a second, as a change
of the runtime flags does (their TTL is 2 s too). A process's own failures count at once. The
window was 0.5 s: a read every 0.25 s, 0.47 ms of CPU each on a process woken for it, about
1.4 ms per answer at one stream (bench/CHANGES.md). If Redis is unreachable the breaker
fails open (allows everything) rather than take the chat down with it.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import weakref
from dataclasses import asdict, dataclass
from typing import Any, ClassVar, Literal

from django.conf import settings
from django.core.signals import setting_changed

from chimera.ticker import Ticker
from providers.base import ProviderError

log = logging.getLogger(__name__)

State = Literal["closed", "open", "half-open"]
PREFIX = "chimera:breaker:"
CACHE_S = 2.0  # how long a state read from Redis is trusted (the docstring above)


@dataclass(slots=True)
class _Raw:
    failures: int = 0
    opened_at: float | None = None
    last_error: str = ""

    FIELDS: ClassVar[tuple[str, ...]] = ("failures", "opened_at", "last_error")  # of the hash, in this order

    @classmethod
    def from_row(cls, row: Any) -> _Raw:
        """A provider's hash as ``HMGET <key> *FIELDS`` returns it."""
        failures, opened, last_error = row
        return cls(int(failures or 0), float(opened) if opened else None, _s(last_error))


@dataclass(frozen=True, slots=True)
class BreakerSnapshot:
    """One provider's breaker, for the staff health page."""

    provider: str
    state: State
    consecutive_failures: int
    last_error: str
    opened_at: float | None  # epoch seconds

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# KEYS[1] = state hash, KEYS[2] = probe key. ARGV = error text, now, threshold, cooldown.
# One failure: count it; open at the threshold; a failure while half-open re-opens (new cooldown).
_FAILURE_LUA = """
local n = redis.call('HINCRBY', KEYS[1], 'failures', 1)
redis.call('HSET', KEYS[1], 'last_error', ARGV[1])
local opened = redis.call('HGET', KEYS[1], 'opened_at')
local now = tonumber(ARGV[2])
if opened then
  if now - tonumber(opened) >= tonumber(ARGV[4]) then
    redis.call('HSET', KEYS[1], 'opened_at', ARGV[2])
    opened = ARGV[2]
  end
  redis.call('DEL', KEYS[2])
elseif n >= tonumber(ARGV[3]) then
  redis.call('HSET', KEYS[1], 'opened_at', ARGV[2])
  opened = ARGV[2]
end
return {n, opened or ''}
"""

# KEYS[1] = state hash, KEYS[2] = probe key. ARGV = now, cooldown (s), probe ttl (ms).
# Returns {state, failures, opened_at, last_error}; state 2 = half-open and this caller holds the probe.
_ALLOW_LUA = """
local v = redis.call('HMGET', KEYS[1], 'failures', 'opened_at', 'last_error')
if not v[2] then return {0, v[1] or '0', '', v[3] or ''} end
if tonumber(ARGV[1]) - tonumber(v[2]) < tonumber(ARGV[2]) then return {1, v[1] or '0', v[2], v[3] or ''} end
if redis.call('SET', KEYS[2], '1', 'NX', 'PX', ARGV[3]) then return {2, v[1] or '0', v[2], v[3] or ''} end
return {3, v[1] or '0', v[2], v[3] or ''}
"""


class Breaker:
    """Per-provider circuit breaker; one instance per process is enough (``get_breaker()``)."""

    def __init__(
        self,
        *,
        threshold: int | None = None,
        cooldown_s: float | None = None,
        redis_url: str | None = None,
        prefix: str = PREFIX,
        cache_s: float = CACHE_S,
        clock: Any = time.time,
    ) -> None:
        from providers.catalog import get_catalog

        catalog = get_catalog()
        self.threshold = threshold if threshold is not None else catalog.breaker_threshold
        self.cooldown_s = cooldown_s if cooldown_s is not None else catalog.breaker_cooldown_s
        self.redis_url = (getattr(settings, "REDIS_URL", "") or "") if redis_url is None else redis_url
        self.prefix = prefix
        self.cache_s = cache_s
        self.clock = clock
        self._cache: dict[str, tuple[float, _Raw]] = {}  # name -> (read at, state)
        self._mem: dict[str, _Raw] = {}
        self._mem_probe: dict[str, float] = {}  # name -> probe claimed until
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = weakref.WeakKeyDictionary()
        self._sync_client: Any = None  # the background refresh's (a thread, not a loop)
        self._cache_lock = threading.Lock()  # the refresh thread never replaces a newer entry
        self._warned_at = 0.0

    @property
    def shared(self) -> bool:
        return bool(self.redis_url)

    # -- public API ---------------------------------------------------------------------------

    async def state(self, provider: str) -> State:
        return (await self.states((provider,)))[provider]

    async def states(self, providers: Any) -> dict[str, State]:
        """States of several providers in at most one round trip (none while the cache is fresh)."""
        raws = await self._read(tuple(providers))
        now = self.clock()
        return {name: self._state_of(raw, now) for name, raw in raws.items()}

    async def allow(self, provider: str) -> bool:
        """May an attempt start? Closed: yes. Open: no. Half-open: only the one probe."""
        now = self.clock()
        hit = self._cache.get(provider)
        if hit is not None and time.monotonic() - hit[0] < self.cache_s and hit[1].opened_at is None:
            return True
        if not self.shared:
            raw = self._mem.get(provider)
            state = self._state_of(raw, now)
            if state != "half-open":
                return state == "closed"
            if self._mem_probe.get(provider, 0.0) > now:
                return False
            self._mem_probe[provider] = now + self.cooldown_s
            return True
        try:
            _, _, allow_script = self._client()
            code, failures, opened, last_error = await allow_script(
                keys=self._keys(provider), args=[now, self.cooldown_s, int(self.cooldown_s * 1000) or 1]
            )
        except Exception as exc:  # Redis down: fail open
            self._warn(exc)
            return True
        self._remember(provider, _Raw(int(failures), float(opened) if opened else None, _s(last_error)))
        return int(code) in (0, 2)

    async def opened_at(self, providers: Any) -> dict[str, float | None]:
        """When each provider's breaker opened (epoch seconds; None: closed), freshly read."""
        raws = await self._read(tuple(providers), fresh=True)
        return {name: raw.opened_at for name, raw in raws.items()}

    async def record_success(self, provider: str) -> None:
        hit = self._cache.get(provider)
        if (
            hit is not None
            and time.monotonic() - hit[0] < self.cache_s
            and hit[1].failures == 0
            and hit[1].opened_at is None
        ):
            return  # already closed with a clean count: nothing to write
        if not self.shared:
            self._mem.pop(provider, None)
            self._mem_probe.pop(provider, None)
        else:
            try:
                client = self._client()[0]
                await client.delete(*self._keys(provider))
            except Exception as exc:
                self._warn(exc)
                return
        self._remember(provider, _Raw())

    async def record_failure(self, provider: str, err: BaseException | None = None) -> None:
        if isinstance(err, ProviderError) and err.caused_by_request:
            return
        text = _describe(err)[:500]
        now = self.clock()
        if not self.shared:
            raw = self._mem.setdefault(provider, _Raw())
            raw.failures += 1
            raw.last_error = text
            if raw.opened_at is not None:
                if now - raw.opened_at >= self.cooldown_s:  # the half-open probe failed
                    raw.opened_at = now
                self._mem_probe.pop(provider, None)
            elif raw.failures >= self.threshold:
                raw.opened_at = now
            self._remember(provider, _Raw(raw.failures, raw.opened_at, raw.last_error))
            return
        try:
            _, failure_script, _ = self._client()
            failures, opened = await failure_script(
                keys=self._keys(provider), args=[text, now, self.threshold, self.cooldown_s]
            )
        except Exception as exc:
            self._warn(exc)
            return
        opened_s = _s(opened)
        self._remember(provider, _Raw(int(failures), float(opened_s) if opened_s else None, text))

    async def snapshot(self, providers: Any = None) -> list[BreakerSnapshot]:
        """Every known provider's breaker (those given, plus any with recorded state)."""
        names: list[str] = list(providers) if providers is not None else []
        if providers is None:
            from providers.catalog import get_catalog

            names = list(get_catalog().providers)
        if self.shared:
            try:
                client = self._client()[0]
                async for key in client.scan_iter(match=f"{self.prefix}*", count=200):
                    name = _s(key)[len(self.prefix) :]
                    if not name.endswith(":probe") and name not in names:
                        names.append(name)
            except Exception as exc:
                self._warn(exc)
        else:
            names.extend(n for n in self._mem if n not in names)
        raws = await self._read(tuple(names), fresh=True)
        now = self.clock()
        return [
            BreakerSnapshot(name, self._state_of(raw, now), raw.failures, raw.last_error, raw.opened_at)
            for name, raw in raws.items()
        ]

    async def reset(self, provider: str) -> None:
        """Close one provider's breaker by hand (operations)."""
        with self._cache_lock:
            self._cache.pop(provider, None)
        await self.record_success(provider)

    # -- internals ----------------------------------------------------------------------------

    def _state_of(self, raw: _Raw | None, now: float) -> State:
        if raw is None or raw.opened_at is None:
            return "closed"
        return "open" if now - raw.opened_at < self.cooldown_s else "half-open"

    def _keys(self, provider: str) -> list[str]:
        key = self.prefix + provider
        return [key, key + ":probe"]

    def _remember(self, provider: str, raw: _Raw) -> None:
        with self._cache_lock:
            self._cache[provider] = (time.monotonic(), raw)

    def refresh_cached(self) -> None:
        """Read again (sync, one round trip) the states this process has cached, so the hot path finds
        them fresh. Stamped with the time the read was sent: an entry this process wrote after that
        (its own failure or success) is newer and stays. Redis unreachable: nothing changes, and the
        entries age out as they would without this."""
        names = list(self._cache)
        if not self.shared or self.cache_s <= 0 or not names:
            return
        sent = time.monotonic()
        try:
            if self._sync_client is None:
                import redis

                wait = settings.REDIS_TIMEOUT_S
                self._sync_client = redis.Redis.from_url(
                    self.redis_url, socket_timeout=wait, socket_connect_timeout=wait
                )
            pipe = self._sync_client.pipeline(transaction=False)
            for name in names:
                pipe.hmget(self.prefix + name, *_Raw.FIELDS)
            rows = pipe.execute()
        except Exception as exc:
            self._warn(exc)
            return
        with self._cache_lock:
            for name, row in zip(names, rows, strict=True):
                hit = self._cache.get(name)
                if hit is None or hit[0] <= sent:
                    self._cache[name] = (sent, _Raw.from_row(row))

    async def _read(self, names: tuple[str, ...], fresh: bool = False) -> dict[str, _Raw]:
        if not self.shared:
            return {n: self._mem.get(n) or _Raw() for n in names}
        out: dict[str, _Raw] = {}
        missing: list[str] = []
        mono = time.monotonic()
        for name in names:
            hit = self._cache.get(name)
            if not fresh and hit is not None and mono - hit[0] < self.cache_s:
                out[name] = hit[1]
            else:
                missing.append(name)
        if missing:
            try:
                client = self._client()[0]
                async with client.pipeline(transaction=False) as pipe:
                    for name in missing:
                        pipe.hmget(self.prefix + name, *_Raw.FIELDS)
                    rows = await pipe.execute()
            except Exception as exc:
                self._warn(exc)
                rows = [[None, None, None]] * len(missing)
            for name, row in zip(missing, rows, strict=True):
                raw = _Raw.from_row(row)
                self._remember(name, raw)
                out[name] = raw
        return {n: out[n] for n in names}

    def _client(self) -> tuple[Any, Any, Any]:
        # redis.asyncio connections belong to the event loop that opened them: one client per loop.
        loop = asyncio.get_running_loop()
        entry = self._clients.get(loop)
        if entry is None:
            import redis.asyncio as aioredis

            # CHIMERA_REDIS_TIMEOUT_MS, as every other use of Redis: a hung Redis costs a turn no more.
            wait = settings.REDIS_TIMEOUT_S
            client = aioredis.from_url(self.redis_url, socket_timeout=wait, socket_connect_timeout=wait)
            entry = (client, client.register_script(_FAILURE_LUA), client.register_script(_ALLOW_LUA))
            self._clients[loop] = entry
        return entry

    def _warn(self, exc: BaseException) -> None:
        now = time.monotonic()
        if now - self._warned_at > 30:
            self._warned_at = now
            log.warning("circuit breaker: Redis unavailable, failing open: %r", exc)

    async def aclose(self) -> None:
        entry = self._clients.pop(asyncio.get_running_loop(), None)
        if entry is not None:
            await entry[0].aclose()


def _s(value: Any) -> str:
    if value is None:
        return ""
    return value.decode() if isinstance(value, bytes) else str(value)


def _describe(err: BaseException | None) -> str:
    if err is None:
        return "failure"
    if isinstance(err, ProviderError):
        return f"{err.status} {err.message}" if err.status else err.message
    return f"{type(err).__name__}: {err}"


_default: dict[str, Breaker] = {}


def get_breaker() -> Breaker:
    """The process-wide breaker, configured from settings and the catalog on first use."""
    breaker = _default.get("b")
    if breaker is None:
        breaker = _default["b"] = Breaker()
    return breaker


def _refresh_default() -> None:
    breaker = _default.get("b")
    if breaker is not None:
        breaker.refresh_cached()


_refresher = Ticker(
    "chimera-breaker-refresh",
    _refresh_default,
    lambda: max(0.1, (_default["b"].cache_s if "b" in _default else CACHE_S) / 2),
    database=False,
)


def start() -> None:
    """Keep the process-wide breaker's cached states fresh in the background (every web process,
    chimera/asgi.py): a turn's route is then planned with no round trip."""
    _refresher.start()


def stop() -> None:
    _refresher.stop()


def reset_default_breaker() -> None:
    """Forget the process-wide breaker (settings changed; tests)."""
    _default.clear()


def _on_setting_changed(*, setting: str, **kwargs: Any) -> None:
    if setting in ("REDIS_URL", "CHIMERA_CATALOG"):
        reset_default_breaker()


setting_changed.connect(_on_setting_changed, dispatch_uid="providers.breaker")
