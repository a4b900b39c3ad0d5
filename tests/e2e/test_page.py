"""The page as people use it: dark mode (system and toggle, remembered), Esc stops, the
conversation as a polite live region, the favicon."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.e2e.test_chat import send

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

LIGHT_BG, DARK_BG = "rgb(247, 247, 248)", "rgb(21, 22, 26)"


def background(page) -> str:
    return page.evaluate("getComputedStyle(document.body).backgroundColor")


def test_dark_mode_follows_the_system_and_the_toggle_is_remembered(logged_in_page, live_server, emu):
    page = logged_in_page
    page.emulate_media(color_scheme="dark")
    page.reload()
    assert background(page) == DARK_BG
    toggle = page.locator('[data-testid="theme-toggle"]')
    expect(toggle).to_have_text("Theme: system")
    toggle.click()
    expect(toggle).to_have_text("Theme: light")
    assert background(page) == LIGHT_BG  # chosen light beats the system's dark
    page.reload()
    expect(toggle).to_have_text("Theme: light")  # remembered
    assert background(page) == LIGHT_BG
    toggle.click()
    expect(toggle).to_have_text("Theme: dark")
    page.emulate_media(color_scheme="light")
    assert background(page) == DARK_BG  # chosen dark beats the system's light
    page.reload()
    assert background(page) == DARK_BG and page.evaluate("document.documentElement.dataset.theme") == "dark"


def test_escape_stops_the_answer_and_the_conversation_is_a_polite_live_region(
    logged_in_page, live_server, emu
):
    page = logged_in_page
    log = page.locator('[data-testid="messages"]')
    assert log.get_attribute("role") == "log" and log.get_attribute("aria-live") == "polite"
    emu.timing(provider="*", ttft_ms=50, chunk_ms=60, chunks=200)
    send(page, "Count to two hundred slowly")
    expect(page.locator('[data-testid="message-content"]').last).to_contain_text(re.compile(r"\w+ \w+ \w+"))
    expect(log).to_have_attribute("aria-busy", "true")  # screen readers wait for the whole answer
    page.keyboard.press("Escape")
    expect(page.locator('[data-testid="retry-button"]')).to_be_visible(timeout=15_000)
    expect(log).to_have_attribute("aria-busy", "false")
    expect(page.locator('[data-testid="chat-input"]')).to_be_focused()


def test_the_favicon_is_served(page, live_server):
    response = page.goto(live_server.url + "/favicon.ico")
    assert response.status == 200 and "svg" in response.headers["content-type"]
