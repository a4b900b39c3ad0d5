"""The staff dashboard in Chromium: every chart drawn with points, at phone and desktop width, under
the Content-Security-Policy; the range picker's presets, a bad custom range, a chart's CSV."""

from __future__ import annotations

import csv
import io

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from tests.conftest import PASSWORD
from tests.e2e.test_security import RECORD_VIOLATIONS
from tests.usage.test_dashboard_charts import traffic
from usage.dashboard import CHARTS

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

CHART_POINTS = """
() => Array.from(document.querySelectorAll("figure[data-dashboard-chart]")).map((figure) => {
  const chart = Chart.getChart(figure.querySelector("canvas"));
  return {
    name: figure.dataset.dashboardChart,
    ready: figure.dataset.chartReady !== undefined,
    width: chart ? chart.width : 0,
    points: chart ? chart.data.datasets.map((d) => d.data.filter((v) => v !== null).length) : [],
  };
})
"""


@pytest.fixture
def staff_page(page, live_server, staff):
    """Staff, signed in through the real login form."""
    page.goto(live_server.url + "/accounts/login/")
    page.fill('[data-testid="username"]', "staff")
    page.fill('[data-testid="password"]', PASSWORD)
    page.click('[data-testid="login-button"]')
    page.wait_for_url(live_server.url + "/")
    return page


def wait_for_charts(page, bucket: str) -> None:
    page.locator(f'.dash-charts[data-bucket="{bucket}"]').wait_for(state="attached")
    page.locator("body[data-dashboard-ready]").wait_for(state="attached")


@pytest.mark.parametrize("width", [390, 1280])
def test_every_chart_is_drawn_with_points_at_phone_and_desktop_width(
    staff_page, live_server, alice, bob, width
):
    page = staff_page
    traffic(alice, bob, timezone.now())
    page.add_init_script(RECORD_VIOLATIONS)
    page.set_viewport_size({"width": width, "height": 900})
    page.goto(live_server.url + "/usage/dashboard/?range=24h")
    wait_for_charts(page, "hour")
    charts = page.evaluate(CHART_POINTS)
    assert [c["name"] for c in charts] == list(CHARTS)
    for c in charts:
        assert c["ready"] and c["width"] > 0, c
        assert c["points"] and sum(c["points"]) > 0, c  # each chart has points on it
    errors = next(c for c in charts if c["name"] == "errors")
    assert len(errors["points"]) == 3  # error, timeout and 429 rates
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    assert page.evaluate("window.__csp") == []

    # The numbers are there as a table too.
    page.locator('[data-testid="chart-cost"] summary').click()
    expect(page.locator('[data-testid="table-cost"] tbody tr').first).to_be_visible()

    # A chart that cannot be drawn says so and opens its numbers (the chart parts' fallback).
    page.evaluate(
        """window.ChimeraCharts.fail(document.querySelector('[data-testid="chart-latency"]'), "test")"""
    )
    expect(page.locator('[data-testid="chart-latency"] .chart-note')).to_contain_text(
        "could not be drawn (test)"
    )
    expect(page.locator('[data-testid="chart-latency"] details.chart-table')).to_have_attribute("open", "")

    # A preset: per day.
    page.click('[data-testid="range-7d"]')
    wait_for_charts(page, "day")
    assert all(sum(c["points"]) > 0 for c in page.evaluate(CHART_POINTS))
    assert page.evaluate("window.__csp") == []


def test_a_bad_custom_range_is_explained_and_a_chart_downloads_as_csv(staff_page, live_server, alice, bob):
    page = staff_page
    traffic(alice, bob, timezone.now())
    page.goto(live_server.url + "/usage/dashboard/")
    wait_for_charts(page, "hour")
    with page.expect_download() as download:
        page.click('[data-testid="csv-cost"]')
    rows = list(csv.DictReader(io.StringIO(open(download.value.path(), encoding="utf-8").read())))
    assert rows and {"start", "provider", "model", "user_tier", "cost_usd"} <= set(rows[0])

    page.fill('[data-testid="range-from"]', "2026-06-02T10:00")
    page.fill('[data-testid="range-to"]', "2026-06-01T10:00")
    page.click('[data-testid="range-submit"]')
    expect(page.locator('[data-testid="range-error"]')).to_contain_text("before its end")
    page.fill('[data-testid="range-from"]', "2026-06-01T10:00")
    page.fill('[data-testid="range-to"]', "2026-06-02T10:00")
    page.click('[data-testid="range-submit"]')
    wait_for_charts(page, "hour")
    expect(page.locator("h1")).to_contain_text("2026-06-01 10:00 to 2026-06-02 10:00 UTC")
