"""The pages work under their Content-Security-Policy (no inline script, no eval, no inline style
element): a violation anywhere in a turn, a stop or the other pages fails the test."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.e2e.test_chat import send

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

RECORD_VIOLATIONS = """
window.__csp = [];
document.addEventListener("securitypolicyviolation",
  (e) => window.__csp.push(e.violatedDirective + " " + (e.blockedURI || e.sample)));
"""


def test_the_pages_run_under_their_content_security_policy(logged_in_page, live_server, emu):
    page = logged_in_page
    page.add_init_script(RECORD_VIOLATIONS)
    console = []
    page.on("console", lambda m: console.append(m.text) if "Content Security Policy" in m.text else None)
    seen = []

    response = page.goto(live_server.url + "/")
    assert "script-src 'self'" in response.headers["content-security-policy"]
    send(page, "Explain quantum computing")
    expect(page.locator('[data-testid="message-complete"]')).to_be_visible(timeout=30_000)

    emu.timing(provider="*", ttft_ms=50, chunk_ms=60, chunks=200)
    send(page, "Count to two hundred slowly")
    expect(page.locator('[data-testid="message-content"]').last).to_contain_text(re.compile(r"\w+ \w+ \w+"))
    page.click('[data-testid="stop-button"]')  # its message id comes from chat.js, not an eval'd hx-vals
    expect(page.locator('[data-testid="retry-button"]')).to_be_visible(timeout=15_000)
    seen += page.evaluate("window.__csp")

    for path in ("/knowledge/", "/accounts/settings/"):
        page.goto(live_server.url + path)
        seen += page.evaluate("window.__csp")
    assert seen == [] and console == []
