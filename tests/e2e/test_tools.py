"""Tools in the browser: a tool call's card goes pending/running → success while the answer is
written, with its arguments and result, and stays after a reload; a report's chart is drawn."""

from __future__ import annotations

import json

import pytest
from playwright.sync_api import expect

from chat.models import Message
from tests.e2e.test_chat import send

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

SLOW_CODE = {"language": "python", "code": "import time\ntime.sleep(1.5)\nprint(6 * 7)"}


def test_a_tool_card_goes_from_running_to_success_live_and_stays(logged_in_page, live_server, emu):
    page = logged_in_page
    page.check('[data-testid="tools-toggle"]')
    send(page, f"Work it out [[tool:executeCode {json.dumps(SLOW_CODE)}]]")

    card = page.locator('[data-testid="tool-card"]').first
    expect(card).to_have_attribute("data-status", "running", timeout=30_000)  # the code is running
    expect(card.locator('[data-testid="tool-status"]')).to_have_text("running…")
    expect(card).to_have_attribute("data-status", "success", timeout=30_000)
    expect(card.locator('[data-testid="tool-status"]')).to_have_text("done")
    expect(page.locator('[data-testid="message-complete"]')).to_be_visible(timeout=30_000)
    card.locator("summary").click()  # collapsible: open it to read the call
    expect(card).to_contain_text("executeCode")
    expect(card).to_contain_text("time.sleep(1.5)")  # its arguments
    expect(card).to_contain_text("42")  # its result
    assert "42" in page.locator('[data-testid="message-content"]').last.inner_text()

    page.reload()
    card = page.locator('[data-testid="tool-card"]').first
    expect(card).to_have_attribute("data-status", "success")
    answer = Message.objects.get(role="assistant")
    assert answer.tool_invocations[0]["status"] == "success"


def test_a_report_tool_draws_its_chart_and_table(logged_in_page, live_server, emu):
    page = logged_in_page
    page.check('[data-testid="tools-toggle"]')
    send(page, "Hello")  # some usage to report on
    expect(page.locator('[data-testid="message-complete"]')).to_be_visible(timeout=30_000)
    report = {"subject": "usage", "range": "24h"}
    send(page, f"Report please [[tool:generateReport {json.dumps(report)}]]")
    expect(page.locator('[data-testid="message-complete"]')).to_have_count(2, timeout=30_000)
    chart = page.locator('[data-testid="chart"]').first
    expect(chart).to_be_visible()
    canvas = chart.locator("canvas")
    expect(canvas).to_have_count(1, timeout=15_000)
    drawn = canvas.evaluate(
        "c => { const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
        " for (let i = 3; i < d.length; i += 4) if (d[i]) return true; return false; }"
    )
    assert drawn  # the vendored Chart.js painted something
    expect(chart.locator("table")).to_have_count(1)  # the same numbers as a table
