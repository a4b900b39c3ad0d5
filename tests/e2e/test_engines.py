"""The streaming, failover and rate-limit scenarios in Firefox ESR and WebKitGTK (Debian's), beside
the Chromium runs of tests/e2e/test_chat.py. No fixed sleeps: every wait polls the page for a
condition, with a generous deadline."""

from __future__ import annotations

import re

import pytest

from chat.models import Message
from flags import runtime as flags
from tests.conftest import PASSWORD
from tests.e2e.engines import ENGINES

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

COMPLETE = "[data-testid=message-complete]"


@pytest.fixture(scope="module", params=sorted(ENGINES))
def engine(request):
    browser = ENGINES[request.param]()
    yield browser
    browser.close()


@pytest.fixture
def signed_in(engine, live_server, alice):
    engine.login(live_server.url, "alice", PASSWORD)
    return engine


def test_an_answer_streams_in_and_is_kept_after_a_reload(signed_in, live_server, emu):
    browser = signed_in
    emu.timing(provider="*", ttft_ms=300, chunk_ms=25, chunks=60)
    browser.js(
        "window.__mutations = 0; new MutationObserver(() => window.__mutations++).observe("
        "document.getElementById('messages'), {childList: true, subtree: true, characterData: true});"
    )
    browser.send("Explain quantum computing")
    browser.wait("return document.querySelectorAll(arguments[0]).length === 1", COMPLETE, what="the answer")
    assert browser.js("return window.__mutations") >= 5, browser.name  # it arrived in steps
    answer = Message.objects.get(role="assistant")
    shown = browser.text("[data-testid=message-content]")
    assert answer.status == "complete" and answer.content.split()[:5] == shown.split()[:5]

    browser.goto(f"{live_server.url}/c/{answer.conversation_id}/")
    browser.wait("return document.querySelectorAll(arguments[0]).length === 1", COMPLETE, what="the reload")
    assert browser.text("[data-testid=message-content]").split()[:5] == shown.split()[:5]


def test_failover_answers_from_the_next_provider(signed_in, live_server, emu):
    browser = signed_in
    emu.fault(provider="groq", kind="status", status=503)
    browser.send("Test failover")
    browser.wait("return document.querySelectorAll(arguments[0]).length === 1", COMPLETE, what="the answer")
    provider = browser.js("return document.querySelector('[data-testid=message-metadata]').dataset.provider")
    assert provider == "google", browser.name


def test_the_rate_limit_shows_when_to_try_again(signed_in, live_server, emu):
    browser = signed_in
    flags.set_flags({"rateLimit": {"freeLimit": 1}})
    browser.send("One")
    browser.wait("return document.querySelectorAll(arguments[0]).length === 1", COMPLETE, what="the answer")
    browser.send("Two")
    error = browser.wait(
        "const e = document.querySelector('[data-testid=rate-limit-error]'); return e && e.textContent",
        what="the rate-limit error",
    )
    assert re.search(r"try again in \d+ seconds", error), error
    assert Message.objects.filter(role="user").count() == 1
