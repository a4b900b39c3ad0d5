"""The page sockets' channel layer: channels_redis, made to ride out a Redis outage.

Every page socket waits on the layer for group messages (``chat.signals``: sign-out, deactivation).
With the stock layer a Redis outage raises out of that wait and daphne closes every socket with
1011: chat would stop although nothing it streams goes through Redis. Here a connection failure in
the wait is logged (once per outage) and retried with a growing pause; the socket keeps working,
and group messages flow again when Redis is back. ``send``/``group_*`` still raise: their callers
decide (the consumer and ``chat.signals`` log and carry on).
"""

from __future__ import annotations

import asyncio
import logging
import time

from channels_redis.core import RedisChannelLayer
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

log = logging.getLogger(__name__)

DOWN = (RedisConnectionError, RedisTimeoutError, OSError)
PAUSE_S = (0.5, 1.0, 2.0, 5.0)


class ResilientRedisChannelLayer(RedisChannelLayer):
    _warned_at = 0.0

    async def receive(self, channel):
        failures = 0
        while True:
            try:
                return await super().receive(channel)
            except DOWN as exc:
                now = time.monotonic()
                if now - ResilientRedisChannelLayer._warned_at > 60:
                    ResilientRedisChannelLayer._warned_at = now
                    log.warning("channel layer: Redis unreachable (%s); page sockets keep working", exc)
                await asyncio.sleep(PAUSE_S[min(failures, len(PAUSE_S) - 1)])
                failures += 1
