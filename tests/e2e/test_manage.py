"""Managing a conversation in the browser: rename, archive, unarchive, export, the fork link, delete."""

from __future__ import annotations

import json

import pytest
from playwright.sync_api import expect

from chat.models import Conversation
from tests.e2e.test_chat import send

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def open_drawer(page, width: int) -> None:
    """Below 768 px the conversation list is a drawer."""
    if width < 768:
        page.click('[data-testid="drawer-toggle"]')


@pytest.mark.parametrize("width", [390, 1280])
def test_rename_archive_unarchive_export_fork_and_delete(logged_in_page, live_server, emu, width):
    page = logged_in_page
    page.set_viewport_size({"width": width, "height": 900})
    send(page, "Plan a trip to Lisbon")
    expect(page.locator('[data-testid="message-complete"]')).to_be_visible(timeout=30_000)
    conversation = Conversation.objects.get()
    page.goto(f"{live_server.url}/c/{conversation.id}/")

    page.evaluate("window.__same_page = true")
    page.fill('[data-testid="title-input"]', "Lisbon in May")
    page.click('[data-testid="rename-button"]')
    expect(page.locator('[data-testid="conversation-link"]').first).to_have_text("Lisbon in May")
    assert page.evaluate("window.__same_page === true")  # over htmx: swapped, not reloaded

    with page.expect_download() as download:
        page.click('[data-testid="export-json"]')
    exported = json.loads(open(download.value.path(), encoding="utf-8").read())
    assert (
        exported["title"] == "Lisbon in May" and exported["messages"][0]["content"] == "Plan a trip to Lisbon"
    )
    with page.expect_download() as download:
        page.click('[data-testid="export-md"]')
    assert open(download.value.path(), encoding="utf-8").read().startswith("# Lisbon in May")

    page.click('[data-testid="archive-button"]')
    expect(page.locator('[data-testid="archive-button"]')).to_have_text("Unarchive")
    expect(page.locator('[data-testid="conversation-link"]')).to_have_count(0)  # gone from the list
    open_drawer(page, width)
    page.click('[data-testid="show-archived"]')
    expect(page.locator('[data-testid="conversation-link"]')).to_have_text(["Lisbon in May"])
    open_drawer(page, width)
    page.click('[data-testid="conversation-link"]')
    page.click('[data-testid="archive-button"]')
    expect(page.locator('[data-testid="archive-button"]')).to_have_text("Archive")

    page.locator('[data-testid="fork-button"]').last.click()
    expect(page.locator('[data-testid="forked-from"]')).to_contain_text("Lisbon in May")
    page.click('[data-testid="forked-from"]')
    expect(page).to_have_url(f"{live_server.url}/c/{conversation.id}/")

    page.click('[data-testid="delete-toggle"]')
    page.click('[data-testid="delete-confirm"]')
    expect(page).to_have_url(f"{live_server.url}/")  # the address follows the redirect
    assert not Conversation.objects.filter(pk=conversation.id).exists()
    assert page.evaluate("document.documentElement.scrollWidth") <= width


def test_save_edits_in_place_and_copy_puts_a_message_on_the_clipboard(logged_in_page, live_server, emu):
    page = logged_in_page
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server.url)
    send(page, "Plan a trip to Lisbon")
    expect(page.locator('[data-testid="message-complete"]')).to_be_visible(timeout=30_000)
    answer = page.locator('[data-testid="message-content"]').last.inner_text()

    page.locator('article.assistant [data-testid="copy-message"]').last.click()
    expect(page.locator('article.assistant [data-testid="copy-message"]').last).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()").split()[:3] == answer.split()[:3]

    page.click('[data-testid="edit-button"]')
    page.fill('[data-testid="edit-input"]', "Plan a trip to Porto")
    page.click('[data-testid="edit-save-only"]')
    expect(page.locator('[data-testid="user-message"]')).to_have_text("Plan a trip to Porto")
    expect(page.locator(".edited")).to_be_visible()
    expect(page.locator('[data-testid="message-content"]')).to_have_count(1)  # no new answer
    assert len(emu.requests()) == 1
