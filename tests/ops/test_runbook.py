"""docs/RUNBOOK.md, followed step by step against a running server, as the person on call would:
each rollback is one `manage.py` command on the server's database, and the running server behaves
differently on its next requests (the flags reach every process within their 2-second TTL)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings as django_settings

from tests.api.helpers import chat, wait_for
from tests.conftest import _database_url

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parents[2]
HELLO = {"messages": [{"role": "user", "content": "Hello there"}]}


def on_call(*args: str) -> str:
    """``python manage.py ARGS`` on the server's database and Redis, as the runbook says."""
    env = {
        "PATH": os.environ["PATH"],
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": _database_url(),
        "REDIS_URL": django_settings.REDIS_URL,
        "CACHE_KEY_PREFIX": django_settings.CACHES["default"].get("KEY_PREFIX", "chimera"),
    }
    done = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def load(tmp_path: Path, flags: str) -> None:
    path = tmp_path / "flags.json"
    path.write_text(flags)
    on_call("load_flags", "--merge", str(path))


def answered_by(emu, http, server, key, body=HELLO) -> str:
    response, _ = chat(http, server.url, body, key)
    assert response.status_code == 200
    return [r for r in emu.requests() if r["body"] is not None][-1]["provider"]


def until(what: str, check):
    """Ask until the running server does what the step promises (the flags' cache time is 2 s)."""
    wait_for(check, timeout=30, interval=0.25, what=f"the server to {what}")


def test_bypass_the_gateway_then_switch_the_primary_then_take_a_provider_out(
    server_with, emu, http, alice, alice_key, tmp_path
):
    server = server_with(
        flags={"enableCaching": False, "rateLimit": {"enabled": False}}, env={"AI_GATEWAY_API_KEY": "gw"}
    )
    assert answered_by(emu, http, server, alice_key) == "gateway"

    load(tmp_path, '{"enableAIGateway": false}')  # 1. bypass the AI Gateway
    until("bypass the gateway", lambda: answered_by(emu, http, server, alice_key) == "groq")

    load(tmp_path, '{"providers": {"primary": "anthropic"}}')  # 2. switch the primary provider
    until("answer from Anthropic", lambda: answered_by(emu, http, server, alice_key) == "anthropic")

    load(tmp_path, '{"providers": {"primary": "groq", "disabled": ["groq"]}}')  # 3. take one out
    until("stop calling Groq", lambda: answered_by(emu, http, server, alice_key) == "gemini")

    shown = on_call("show_flags")
    assert '"disabled": [\n   "groq"\n  ]' in shown


def test_disable_streaming_and_the_circuit_breaker(server_with, emu, http, alice, alice_key, tmp_path):
    server = server_with(flags={"enableCaching": False, "rateLimit": {"enabled": False}})
    response, _ = chat(http, server.url, HELLO, alice_key)
    assert response.headers["content-type"].startswith("text/event-stream")

    load(tmp_path, '{"enableStreaming": false}')  # 4. disable streaming: one JSON body
    until(
        "answer in one JSON body",
        lambda: (
            chat(http, server.url, HELLO, alice_key)[0].headers["content-type"].startswith("application/json")
        ),
    )

    load(tmp_path, '{"enableStreaming": true, "enableCaching": true}')  # the cache back on
    until(
        "answer from the cache",
        lambda: chat(http, server.url, HELLO, alice_key)[0].headers["x-gateway-cache"] == "hit",
    )
    load(tmp_path, '{"rateLimit": {"enabled": true, "freeBurst": 1}}')  # limits: one a minute
    until("refuse a second message", lambda: chat(http, server.url, HELLO, alice_key)[0].status_code == 429)
    load(tmp_path, '{"rateLimit": {"enabled": false}, "enableCaching": false, "enableFailover": false}')
    emu.fault(provider="groq", kind="status", status=503, times=40)
    until(  # no failover: Groq's error is the answer's
        "stop failing over",
        lambda: (
            "error" in [p["type"] for p in chat(http, server.url, HELLO, alice_key)[1] if isinstance(p, dict)]
        ),
    )
    load(tmp_path, '{"enableFailover": true}')
    emu.clear()

    # 5. The circuit breaker opens by itself after 5 consecutive failures: Groq is then passed over.
    emu.fault(provider="groq", kind="status", status=503, times=20)
    for _ in range(3):
        chat(http, server.url, HELLO, alice_key)  # each tries Groq (retries included), then Gemini
    emu.clear()
    assert answered_by(emu, http, server, alice_key) == "gemini"
    assert not any(r["provider"] == "groq" for r in emu.requests())


def test_a_migration_rolled_back_and_forward_while_the_server_runs(live_server, emu, http, alice, alice_key):
    plan = on_call("showmigrations", "usage", "flags")
    assert "[X] 0006_job_runs" in plan and "[X] 0002_flagchange" in plan
    on_call("migrate", "usage", "0005")  # 6. roll back the newest migration
    assert "[ ] 0006_job_runs" in on_call("showmigrations", "usage")
    response, _ = chat(http, live_server.url, HELLO, alice_key)
    assert response.status_code == 200  # chat does not need the rolled-back table to answer
    on_call("migrate")  # and forward again
    assert "[X] 0006_job_runs" in on_call("showmigrations", "usage")
