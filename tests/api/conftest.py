"""API test fixtures: API keys for the personas, a session for alice, servers with chosen flags."""

from __future__ import annotations

import subprocess

import httpx2
import pytest
from django.test import Client

from accounts.apikeys import create_api_key
from tests.conftest import start_live_server


@pytest.fixture
def alice_key(alice) -> str:
    return create_api_key(alice, "tests")[1]


@pytest.fixture
def bob_key(bob) -> str:
    return create_api_key(bob, "tests")[1]


@pytest.fixture
def http():
    with httpx2.Client(timeout=30) as client:
        yield client


@pytest.fixture
def alice_session(alice, live_server):
    """Alice's session cookie and a CSRF token, as the page has them."""
    client = Client()
    client.force_login(alice)
    with httpx2.Client(base_url=live_server.url, timeout=30) as browser:
        browser.cookies.set("sessionid", client.cookies["sessionid"].value)
        browser.get("/accounts/login/")
        yield browser, browser.cookies["csrftoken"]


@pytest.fixture
def server_with(transactional_db, emulator):
    """``server_with(flags={...}, env={...})``: a live server whose flags are stored before it starts."""
    servers = []

    def start(flags: dict | None = None, env: dict[str, str] | None = None):
        if flags:
            from flags.runtime import set_flags

            set_flags(flags)
        server = start_live_server(emulator.url, env)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.process.terminate()
        try:
            server.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.process.kill()
