"""An answer's data parts in real Chromium: charts drawn, code highlighted and copyable, citations linked."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from chat.models import Conversation, Message

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

CODE = 'def greet(name):\n    return f"Hello, {name}!"  # <b>not bold</b>\n'
SERIES = {"labels": ["Mon", "Tue", "Wed"], "series": [{"name": "Cost", "values": [1.5, 0.5, 2]}]}
CHARTS = [
    {"type": "chart", "chartType": "line", "data": {**SERIES, "title": "Line"}},
    {"type": "chart", "chartType": "bar", "data": {**SERIES, "title": "Bar"}},
    {"type": "chart", "chartType": "pie", "data": {**SERIES, "title": "Pie"}},
    {
        "type": "chart",
        "chartType": "scatter",
        "data": {
            "title": "Scatter",
            "series": [{"name": "groq", "points": [[100, 250], [400, 900], [800, 1300]]}],
        },
    },
]
SOURCES = [
    {
        "type": "source-document",
        "sourceId": "a",
        "title": "Alpha paper",
        "url": "https://example.com/alpha",
        "excerpt": "A",
    },
    {"type": "source-document", "sourceId": "b", "title": "Beta notes", "url": "/knowledge/beta"},
]

# How many pixels of each chart's canvas were painted (alpha > 0).
PAINTED = """() => [...document.querySelectorAll('figure[data-chart] canvas')].map(c => {
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i]) n++;
  return [c.closest('figure').dataset.chart, n];
})"""


def test_an_answers_charts_code_and_citations_work_in_the_browser(logged_in_page, live_server, alice):
    page = logged_in_page
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server.url)
    conversation = Conversation.objects.create(user=alice, title="Parts")
    question = Message.objects.create(conversation=conversation, role="user", content="Show me")
    Message.objects.create(
        conversation=conversation,
        parent_message=question,
        role="assistant",
        content="Costs rose midweek [1], as the notes say [2].",
        data_parts=[*CHARTS, {"type": "code", "language": "python", "code": CODE}, *SOURCES],
    )
    page.goto(f"{live_server.url}/c/{conversation.id}/")

    # Every chart type is drawn on its canvas.
    expect(page.locator("figure[data-chart][data-chart-ready]")).to_have_count(4)
    painted = dict(page.evaluate(PAINTED))
    assert set(painted) == {"line", "bar", "pie", "scatter"}
    assert all(n > 500 for n in painted.values()), painted
    expect(page.locator("figure.chart details.chart-table table").first).to_be_attached()  # the numbers too

    # A chart that arrives later (as over the socket) is drawn as well.
    page.evaluate(
        """() => { const f = document.querySelector('figure[data-chart="pie"]').cloneNode(true);
                   delete f.dataset.drawn; delete f.dataset.chartReady; f.querySelector('canvas').remove();
                   f.querySelector('.chart-canvas').appendChild(document.createElement('canvas'));
                   f.id = 'late-chart'; document.getElementById('messages').appendChild(f); }"""
    )
    expect(page.locator("#late-chart[data-chart-ready]")).to_have_count(1)

    # The code is highlighted by Pygments' classes and styled by its stylesheet.
    block = page.locator(".code-part [data-testid=code-block]")
    expect(block.locator("[data-testid=code-lang]")).to_have_text("Python")
    keyword = block.locator("pre.highlight span.k").first
    expect(keyword).to_have_text("def")
    assert keyword.evaluate("e => getComputedStyle(e).color") == "rgb(0, 128, 0)"  # Pygments' default style
    block.locator("[data-testid=copy-code]").click()
    expect(block.locator("[data-testid=copy-code]")).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == CODE

    # Citations: listed with links to their sources, and the markers in the text point at them.
    links = page.locator("[data-testid=citation-link]")
    expect(links).to_have_count(2)
    assert [links.nth(i).get_attribute("href") for i in range(2)] == [
        "https://example.com/alpha",
        "/knowledge/beta",
    ]
    expect(links.first).to_have_text("Alpha paper")
    refs = page.locator("[data-testid=message-content] a.cite-ref")
    expect(refs).to_have_count(2)
    answer_id = page.locator("article.message.assistant").get_attribute("data-message-id")
    assert [refs.nth(i).get_attribute("href") for i in range(2)] == [
        f"#cite-{answer_id}-1",
        f"#cite-{answer_id}-2",
    ]
    refs.nth(1).click()
    assert page.url.endswith(f"#cite-{answer_id}-2")
    assert errors == []
