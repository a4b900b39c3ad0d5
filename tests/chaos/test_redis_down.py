"""Redis down: chat keeps working (the documented degraded mode, README "When Redis is down").

Redis is made unreachable for Chimera only, in two ways a real outage looks: a port that refuses
connections, and a server that accepts them and never answers (where only timeouts save us).
Flags then come from the database, the rate limit fails open (or closed, by a setting), the
breaker keeps its state per process, and the page's socket outlives its channel layer.
"""

from __future__ import annotations

import asyncio
import socket
import threading

import pytest
from asgiref.sync import sync_to_async

from chat.models import Message
from flags import runtime as flags
from tests.api.helpers import chat, metadata_of, text_of
from tests.chat.helpers import connect, frames_until, send, status_of
from tests.conftest import start_live_server

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def silent_redis():
    """A TCP server that accepts connections and never says a word (a hung Redis)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"redis://127.0.0.1:{server.getsockname()[1]}/0"
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    server.close()


@pytest.fixture
def refused_redis():
    """A port nothing listens on (Redis stopped)."""
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    return f"redis://127.0.0.1:{port}/0"


@pytest.fixture(params=["refused", "silent"])
def redis_down(request, settings):
    url = request.getfixturevalue(f"{request.param}_redis")
    settings.REDIS_URL = url
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": url,
            "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
        }
    }
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "chat.layer.ResilientRedisChannelLayer",
            "CONFIG": {"hosts": [{"address": url, "socket_timeout": 0.5, "socket_connect_timeout": 0.5}]},
        }
    }
    settings.REDIS_TIMEOUT_S = 0.5  # the circuit breaker's Redis waits (CHIMERA_REDIS_TIMEOUT_MS)
    flags.invalidate()
    return url


async def test_the_page_answers_and_its_socket_stays_open(alice, emu, redis_down):
    await sync_to_async(flags.set_flags)({"providers": {"disabled": ["groq"]}})  # stored while Redis is down
    communicator = await connect(alice)
    assert (await communicator.connect())[0]
    await send(communicator, action="send", message="Hello while Redis is down")
    frames = await frames_until(communicator, 'data-testid="message-complete"', timeout=60)
    answer = await Message.objects.aget(pk=status_of(frames)["message-id"])
    assert answer.status == Message.Status.COMPLETE and answer.content
    assert answer.metadata["provider"] == "google"  # the flags came from the database

    # The socket outlives failed waits on its channel layer: a second turn on it works too.
    await asyncio.sleep(0)
    await send(communicator, action="send", message="And again", conversation_id=str(answer.conversation_id))
    await frames_until(communicator, 'data-testid="message-complete"', timeout=60)
    await communicator.disconnect()
    assert await Message.objects.filter(role="assistant", status="complete").acount() == 2


@pytest.fixture(params=["refused", "silent"])
def server_without_redis(request, transactional_db, emulator):
    """Starts daphne (as live_server does) with a REDIS_URL that leads nowhere, and stops it after."""
    url = request.getfixturevalue(f"{request.param}_redis")
    servers = []

    def start(**env: str):
        server = start_live_server(emulator.url, {"REDIS_URL": url, "CHIMERA_REDIS_TIMEOUT_MS": "500", **env})
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.process.terminate()
        server.process.wait(timeout=10)


def test_the_api_answers_and_the_limit_fails_open(server_without_redis, emu, http, alice, alice_key):
    server = server_without_redis()
    flags.set_flags({"rateLimit": {"freeLimit": 1}})
    for question in ("One", "Two"):  # the second would be over the limit, but nothing can count it
        body = {"messages": [{"role": "user", "content": question}]}
        response, parts = chat(http, server.url, body, alice_key)
        assert response.status_code == 200, response.read()
        assert metadata_of(parts)["status"] == "complete" and text_of(parts)
    assert "rate limits: the counter store is unreachable" in server.log()


def test_with_the_limit_set_to_fail_closed_messages_wait_with_a_503(
    server_without_redis, emu, http, alice, alice_key
):
    server = server_without_redis(CHIMERA_RATE_LIMIT_WHEN_DOWN="closed")
    response, _ = chat(http, server.url, {"messages": [{"role": "user", "content": "Hi"}]}, alice_key)
    assert response.status_code == 503
    error = response.json()["error"]
    assert error["code"] == "rate_limit_unavailable" and "not lost" in error["message"]
    assert not Message.objects.exists() and emu.requests() == []
