"""The data parts drawn under an answer (chat/parts.py, chat/highlight.py and their partials)."""

from __future__ import annotations

import html
import json
import re
import uuid
from html.parser import HTMLParser
from pathlib import Path

import pytest
from django.template.loader import render_to_string
from django.urls import reverse
from pydantic import ValidationError

from chat import parts
from chat.highlight import code_block, stylesheet
from chat.models import Conversation, Message
from chat.render import markdown_html
from chat.schemas import validate_data_parts
from chat.tree import MessageView

ROOT = Path(__file__).resolve().parents[2]
HOSTILE = "<script>alert(1)</script><img src=x onerror=alert(2)>\"'</textarea></pre>"


def answer(data_parts, content="The answer.") -> MessageView:
    return MessageView.build(
        id=uuid.uuid4(),
        conversation_id=uuid.uuid4(),
        role="assistant",
        content=content,
        status="complete",
        data_parts=data_parts,
    )


def rendered(view: MessageView) -> str:
    return render_to_string("chat/partials/_message.html", {"m": view})


class Elements(HTMLParser):
    """Every element's tag and attributes, and the text of each <script>."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict[str, str | None]]] = []
        self.scripts: list[tuple[dict[str, str | None], str]] = []
        self._in_script: dict[str, str | None] | None = None

    def handle_starttag(self, tag, attrs):
        self.elements.append((tag, dict(attrs)))
        if tag == "script":
            self._in_script = dict(attrs)
            self.scripts.append((self._in_script, ""))

    def handle_endtag(self, tag):
        if tag == "script":
            self._in_script = None

    def handle_data(self, data):
        if self._in_script is not None:
            attrs, text = self.scripts[-1]
            self.scripts[-1] = (attrs, text + data)


def elements(markup: str) -> Elements:
    parser = Elements()
    parser.feed(markup)
    parser.close()
    return parser


# ---- safe URLs --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "url",
    [
        "https://example.com/cat.png",
        "HTTPS://Example.COM/cat.png",
        "https://example.com:8443/a/b?c=d#e",
        "https://en.wikipedia.org/wiki/Zürich",
        "/static/cat.png",
        "/media/a%20b.mp4",
    ],
)
def test_https_and_same_origin_paths_are_safe(url):
    assert parts.safe_url(url) == url


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(1)",
        "JaVaScRiPt:alert(1)",
        " javascript:alert(1)",
        "java\tscript:alert(1)",
        "java\nscript:alert(1)",
        "javascript\x00:alert(1)",
        "\u200bjavascript:alert(1)",
        "ｊａｖａｓｃｒｉｐｔ:alert(1)",
        "vbscript:msgbox(1)",
        "data:image/png;base64,iVBORw0KGgo=",
        "data:text/html,<script>alert(1)</script>",
        "http://example.com/cat.png",
        "ftp://example.com/cat.png",
        "//evil.example/cat.png",
        "/\\evil.example/cat.png",
        "\\\\evil.example\\cat.png",
        "https:\\\\evil.example",
        "https://user:secret@example.com/cat.png",
        "https://ex\u0430mple.com/cat.png",  # a Cyrillic a: a look-alike domain
        "https://example.com/\u202egnp.exe",  # a right-to-left override hides the real extension
        "https://example.com/a b.png",
        "https://example.com/cat.png ",
        "https://example.com:99999/cat.png",
        "https:///cat.png",
        "https://",
        "cat.png",
        "",
        "https://example.com/" + "a" * 3000,
        None,
        42,
    ],
)
def test_anything_else_is_refused(url):
    assert parts.safe_url(url) is None


def test_links_to_cited_pages_may_be_plain_http_but_never_javascript():
    assert parts.safe_url("http://example.com/doc", allow_http=True) == "http://example.com/doc"
    assert parts.safe_url("JaVaScRiPt:alert(1)", allow_http=True) is None
    assert parts.safe_url("//evil.example", allow_http=True) is None


def test_media_is_drawn_from_safe_urls_and_shown_as_text_otherwise():
    view = answer(
        [
            {
                "type": "media",
                "mediaType": "image",
                "url": "https://example.com/cat.png",
                "metadata": {"alt": "A cat"},
            },
            {"type": "media", "mediaType": "video", "url": "/media/clip.mp4"},
            {"type": "media", "mediaType": "audio", "url": "https://example.com/a.ogg"},
            {"type": "media", "mediaType": "image", "url": "javascript:alert(1)"},
        ]
    )
    page = elements(rendered(view))
    tags = {tag: attrs for tag, attrs in page.elements if tag in {"img", "video", "audio"}}
    assert tags["img"]["src"] == "https://example.com/cat.png" and tags["img"]["alt"] == "A cat"
    assert tags["video"]["src"] == "/media/clip.mp4" and "controls" in tags["video"]
    assert tags["audio"]["src"] == "https://example.com/a.ogg" and "controls" in tags["audio"]
    markup = rendered(view)
    assert '<code class="media-url">javascript:alert(1)</code>' in markup
    assert "only https:// addresses" in markup


# ---- charts -----------------------------------------------------------------------------------
LINE = {"labels": ["Mon", "Tue", "Wed"], "series": [{"name": "Cost", "values": [1.5, None, 2]}]}


@pytest.mark.parametrize(
    ("chart_type", "data", "columns", "first_row"),
    [
        ("line", LINE, ["", "Cost"], ["Mon", "1.5"]),
        ("bar", {**LINE, "xLabel": "Day"}, ["Day", "Cost"], ["Mon", "1.5"]),
        (
            "pie",
            {"labels": ["a", "b"], "series": [{"name": "Share", "values": [3, 1]}]},
            ["", "Share"],
            ["a", "3"],
        ),
        (
            "scatter",
            {
                "series": [{"name": "groq", "points": [[10, 250.5], [20, 300]]}],
                "xLabel": "tokens",
                "yLabel": "ms",
            },
            ["Series", "tokens", "ms"],
            ["groq", "10", "250.5"],
        ),
    ],
)
def test_a_valid_chart_carries_its_data_and_a_table_of_the_same_numbers(chart_type, data, columns, first_row):
    context = parts.chart_context({"type": "chart", "chartType": chart_type, "data": data})
    assert context["ok"] and context["chartType"] == chart_type
    assert context["data"]["series"] == data["series"]
    assert context["table"]["columns"] == columns
    assert [c["text"] for c in context["table"]["rows"][0]] == first_row


def test_a_gap_in_a_line_is_a_dash_in_its_table():
    context = parts.chart_context({"type": "chart", "chartType": "line", "data": LINE})
    assert [c["text"] for c in context["table"]["rows"][1]] == ["Tue", "—"]


@pytest.mark.parametrize(
    ("chart_type", "data", "why"),
    [
        ("line", {"labels": ["a"], "series": [{"name": "x", "values": [1, 2]}]}, "2 values for 1 labels"),
        ("bar", {"labels": [], "series": [{"values": []}]}, "needs labels"),
        ("pie", {"labels": ["a", "b"], "series": [{"values": [1, -1]}]}, ">= 0"),
        ("pie", {"labels": ["a"], "series": [{"values": [1]}, {"values": [2]}]}, "exactly one series"),
        ("scatter", {"series": [{"name": "s", "values": [1, 2]}]}, "points"),
        ("line", {"labels": ["a"], "series": [{"values": ["many"]}]}, "valid number"),
        ("line", {"labels": ["a"], "series": [{"values": [1e400]}]}, "finite"),
        ("line", {"labels": ["a"], "series": []}, "at least 1"),
        ("line", {"labels": ["a"], "series": [{"values": [1]}] * 13}, "at most 12"),
        ("line", "not even an object", "valid dictionary"),
        ("donut", LINE, "chartType"),
    ],
)
def test_bad_chart_data_is_a_note_and_whatever_table_can_be_read(chart_type, data, why):
    context = parts.chart_context({"type": "chart", "chartType": chart_type, "data": data})
    assert not context["ok"]
    assert why in context["note"]
    markup = render_to_string("chat/partials/parts/chart.html", {"part": context})
    assert "data-chart-invalid" in markup and "data-chart=" not in markup  # nothing for the JS to draw
    assert "<canvas" not in markup and 'type="application/json"' not in markup
    if context["table"]:
        assert "<table" in markup and '<details class="chart-table" open>' in markup
    else:
        assert '<pre class="part-data">' in markup


def test_the_api_refuses_chart_data_in_another_shape():
    with pytest.raises(ValidationError, match="values for"):
        validate_data_parts(
            [{"type": "chart", "chartType": "bar", "data": {"labels": ["a"], "series": [{"values": []}]}}]
        )
    [stored] = validate_data_parts([{"type": "chart", "chartType": "line", "data": LINE}])
    assert stored["data"] == {
        "labels": ["Mon", "Tue", "Wed"],
        "series": [{"name": "Cost", "values": [1.5, None, 2.0]}],
    }


def test_a_chart_page_holds_its_data_as_json_never_as_script():
    markup = rendered(answer([{"type": "chart", "chartType": "bar", "data": {**LINE, "title": HOSTILE}}]))
    page = elements(markup)
    figures = [a for t, a in page.elements if t == "figure" and "data-chart" in a]
    assert [f["data-chart"] for f in figures] == ["bar"]
    [(attrs, text)] = page.scripts
    assert attrs == {"type": "application/json"}
    assert json.loads(text)["title"] == HOSTILE


# ---- components -------------------------------------------------------------------------------
def test_an_unknown_component_is_shown_as_data_never_run():
    context = parts.component_context(
        {"type": "component", "component": "rocket-launcher", "props": {"go": HOSTILE}}
    )
    assert not context["known"] and "rocket-launcher" in context["note"]
    markup = render_to_string("chat/partials/parts/component.html", {"part": context})
    assert '<pre class="part-data">' in markup
    assert html.unescape(
        re.search(r'<pre class="part-data">(.*?)</pre>', markup, re.S).group(1)
    ) == json.dumps({"go": HOSTILE}, indent=2)


def test_a_table_component_draws_its_rows_with_numbers_aligned():
    context = parts.component_context(
        {
            "type": "component",
            "component": "table",
            "props": {
                "columns": ["model", "tokens", "ok"],
                "rows": [["llama", 1200, True], ["gemini", 2.5]],
                "caption": "By model",
            },
        }
    )
    assert context["known"]
    markup = render_to_string("chat/partials/parts/component.html", {"part": context})
    assert "<caption>By model</caption>" in markup
    assert '<td>llama</td><td class="num">1200</td><td>true</td>' in markup
    assert '<td>gemini</td><td class="num">2.5</td><td></td>' in markup  # a short row is padded


@pytest.mark.parametrize(
    ("name", "props"),
    [
        ("table", {"columns": ["a"], "rows": [[1, 2]]}),
        ("table", {"rows": [[1]]}),
        ("table", "rows"),
        ("key-value", {"items": {"a": 1}}),
        ("code-result", {"exitCode": "zero"}),
    ],
)
def test_a_known_component_with_props_of_another_shape_is_shown_as_data(name, props):
    context = parts.component_context({"type": "component", "component": name, "props": props})
    assert not context["known"] and "not in the expected shape" in context["note"]


def test_key_value_and_code_result_components():
    kv = parts.component_context(
        {
            "type": "component",
            "component": "key-value",
            "props": {"items": [{"label": "z", "value": 1}, {"label": "a", "value": "x"}]},
        }
    )
    markup = render_to_string("chat/partials/parts/component.html", {"part": kv})
    assert markup.index("<dt>z</dt>") < markup.index("<dt>a</dt>")  # order kept
    run = parts.component_context(
        {
            "type": "component",
            "component": "code-result",
            "props": {"stdout": "hi\n", "stderr": "warn", "exitCode": 1, "durationMs": 42},
        }
    )
    markup = render_to_string("chat/partials/parts/component.html", {"part": run})
    assert "Exited with code 1 after 42 ms." in markup and '<pre class="stdout">hi\n</pre>' in markup
    timed_out = parts.component_context(
        {"type": "component", "component": "code-result", "props": {"timedOut": True}}
    )
    assert "ran out of time" in render_to_string("chat/partials/parts/component.html", {"part": timed_out})


# ---- citations --------------------------------------------------------------------------------
SOURCES = [
    {
        "type": "source-document",
        "sourceId": "a",
        "title": "Alpha",
        "url": "https://example.com/a",
        "excerpt": "first",
    },
    {"type": "source-document", "sourceId": "b", "title": "Beta", "url": "/knowledge/b", "excerpt": "second"},
    {"type": "source-document", "sourceId": "a", "title": "Alpha again", "url": "https://example.com/a2"},
    {"type": "source-document", "sourceId": "c", "title": "Gamma", "url": "javascript:alert(1)"},
]


def test_sources_are_numbered_once_each_and_link_only_to_safe_urls():
    view = answer(SOURCES)
    assert [(c["n"], c["title"], c["url"]) for c in view.citations] == [
        (1, "Alpha", "https://example.com/a"),
        (2, "Beta", "/knowledge/b"),
        (3, "Gamma", None),
    ]
    page = elements(rendered(view))
    links = [a["href"] for t, a in page.elements if t == "a" and a.get("data-testid") == "citation-link"]
    assert links == ["https://example.com/a", "/knowledge/b"]
    items = [a["id"] for t, a in page.elements if t == "li" and a.get("data-testid") == "citation"]
    assert items == [f"cite-{view.id}-{n}" for n in (1, 2, 3)]


def test_citation_markers_in_the_text_link_to_their_citation_within_range_only():
    view = answer(
        SOURCES, content="Alpha says so [1], Beta too [2]; [3] is last and [4] and [0] are not sources."
    )
    markup = view.html
    for n in (1, 2, 3):
        assert f'<a href="#cite-{view.id}-{n}" class="cite-ref" data-testid="cite-ref">[{n}]</a>' in markup
    assert "and [4] and [0] are not" in markup


def test_citation_markers_are_not_linked_inside_code_links_or_attributes():
    source = 'See [1].\n\n`list[1]` and [a [1] link](https://example.com "title [1] > x")\n\n```\nx[1]\n```'
    markup = parts.link_citations(markdown_html(source), "m", 1)
    assert markup.count('class="cite-ref"') == 1
    assert "<code>list[1]</code>" in markup and 'title="title [1] &gt; x"' in markup
    assert ">a [1] link</a>" in markup
    assert parts.link_citations(markup, "m", 0) == markup


# ---- code -------------------------------------------------------------------------------------
def test_a_code_part_is_highlighted_labelled_copyable_and_runnable():
    code = 'def greet(name):\n    return f"hi {name}" < 3\n'
    view = answer([{"type": "code", "language": "python", "code": code, "executable": True}])
    markup = rendered(view)
    assert '<span class="k">def</span>' in markup and '<span class="nf">greet</span>' in markup
    assert '<span class="code-lang" data-testid="code-lang">Python</span>' in markup
    assert 'data-testid="copy-code"' in markup
    raw = re.search(r'<textarea class="code-raw"[^>]*>(.*?)</textarea>', markup, re.S).group(1)
    assert html.unescape(raw) == code
    page = elements(markup)
    [run] = [a for t, a in page.elements if a.get("data-testid") == "run-code"]
    assert "ws-send" in run
    assert json.loads(run["hx-vals"]) == {"action": "run_code", "message_id": str(view.id), "part": 0}
    assert any(
        a.get("id") == f"code-output-{view.id}-0" and a.get("class") == "code-output"
        for _, a in page.elements
    )


def test_code_that_is_not_executable_has_no_run_button_and_an_unknown_language_is_plain():
    markup = rendered(answer([{"type": "code", "language": "no-such-lang", "code": "<b>x</b>"}]))
    assert "run-code" not in markup and "code-output" not in markup
    assert "no-such-lang" in markup and "&lt;b&gt;x&lt;/b&gt;" in markup


def test_fenced_code_in_an_answer_is_drawn_like_a_code_part():
    markup = answer([], content="Try:\n\n```js\nconst a = 1; // <b>\n```").html
    assert '<span class="kd">const</span>' in markup and '<span class="c1">// &lt;b&gt;</span>' in markup
    assert 'data-testid="copy-code"' in markup and ">JavaScript<" in markup
    assert 'class="code-raw" hidden' in markup
    assert markup.count("<pre") == 1


def test_the_shipped_pygments_stylesheet_is_what_the_pinned_pygments_generates():
    shipped = (ROOT / "static/css/pygments.css").read_text()
    assert shipped == stylesheet()
    assert "@media (prefers-color-scheme: dark)" in shipped and "style=" not in code_block("x", "python")


# ---- markdown, thinking, tool calls -------------------------------------------------------------
def test_a_markdown_part_is_sanitised_and_enhanced_adds_links_to_bare_urls():
    plain, enhanced = (
        parts.renderable_parts(
            [{"type": "markdown", "content": "**b** https://example.com", "enhanced": e}], "m"
        )[0]
        for e in (False, True)
    )
    assert "<strong>b</strong> https://example.com" in plain["html"]
    assert '<a href="https://example.com" rel="noopener noreferrer nofollow">' in enhanced["html"]


def test_thinking_shows_how_long_it_took():
    view = answer([{"type": "thinking", "content": "hmm", "duration": 2300}])
    assert "<summary>Thought for 2.3 s</summary>" in rendered(view)
    assert view.parts == []  # drawn in its own place, not in the parts
    assert "<summary>Thinking</summary>" in rendered(answer([{"type": "thinking", "content": "hmm"}]))
    assert parts.thought_for(65_000) == "1 min 5 s" and parts.thought_for(None) == ""


@pytest.mark.parametrize(
    ("status", "label"),
    [("pending", "pending…"), ("running", "running…"), ("success", "done"), ("error", "failed")],
)
def test_the_tool_card_renders_on_its_own_from_one_part(status, label):
    part = {
        "toolCallId": "call_7",
        "toolName": "generateReport",
        "args": {"subject": "usage", "range": "7d"},
        "status": status,
        "result": {"rows": 3} if status == "success" else None,
        "error": "The query was refused." if status == "error" else "",
        "durationMs": 1234 if status in {"success", "error"} else None,
    }
    markup = render_to_string("chat/partials/parts/tool_call.html", {"part": part})
    [(tag, root)] = elements(markup).elements[:1]
    assert tag == "details" and root["id"] == "tool-call_7" and root["data-status"] == status
    assert root["data-testid"] == "tool-card" and ("open" in root) == (status == "error")
    assert f'data-testid="tool-status">{label}<' in markup
    assert "&quot;subject&quot;: &quot;usage&quot;" in markup
    if status == "success":
        assert "&quot;rows&quot;: 3" in markup and "1.2 s" in markup
    if status == "error":
        assert "The query was refused." in markup and 'role="alert"' in markup
    assert "hx-swap-oob" not in markup
    live = render_to_string("chat/partials/parts/tool_call.html", {"part": part, "tool_oob": True})
    assert elements(live).elements[0][1]["hx-swap-oob"] == "outerHTML"


def test_a_tool_card_inside_a_message_re_rendered_in_place_is_not_swapped_on_its_own():
    view = answer([{"type": "tool-call", "toolCallId": "c1", "toolName": "t", "status": "success"}])
    markup = render_to_string("chat/partials/_message.html", {"m": view, "oob": True})
    assert markup.count("hx-swap-oob") == 1  # the message's own


# ---- hostile input ----------------------------------------------------------------------------
def every_part_kind(text: str) -> list[dict]:
    return [
        {"type": "thinking", "content": text, "duration": 10},
        {"type": "error", "error": text, "retryable": False, "provider": text},
        {
            "type": "provider-switch",
            "fromProvider": text,
            "toProvider": text,
            "model": text,
            "mode": "continue",
            "reason": text,
        },
        {
            "type": "tool-call",
            "toolCallId": text,
            "toolName": text,
            "args": {text: text},
            "status": "error",
            "result": text,
            "error": text,
        },
        {
            "type": "component",
            "component": "table",
            "props": {"columns": [text], "rows": [[text]], "caption": text},
        },
        {
            "type": "component",
            "component": "key-value",
            "props": {"title": text, "items": [{"label": text, "value": text}]},
        },
        {"type": "component", "component": "code-result", "props": {"stdout": text, "stderr": text}},
        {"type": "component", "component": text, "props": {text: [text]}},
        {
            "type": "chart",
            "chartType": "line",
            "data": {
                "labels": [text],
                "series": [{"name": text, "values": [1]}],
                "title": text,
                "xLabel": text,
                "yLabel": text,
            },
        },
        {
            "type": "chart",
            "chartType": "bar",
            "data": {"labels": [text], "series": [{"name": text, "values": [text]}], "title": text},
        },
        {"type": "markdown", "content": text, "enhanced": True},
        {"type": "code", "language": text, "code": text, "executable": True},
        {"type": "code", "language": "html", "code": text},
        {"type": "media", "mediaType": "image", "url": text, "metadata": {"alt": text, "caption": text}},
        {
            "type": "media",
            "mediaType": "video",
            "url": "https://example.com/v.mp4",
            "metadata": {"caption": text},
        },
        {"type": "source-document", "sourceId": text, "title": text, "url": text, "excerpt": text},
    ]


def test_a_hostile_script_in_every_string_field_never_becomes_markup():
    view = answer(every_part_kind(HOSTILE), content=f"{HOSTILE} [1]\n\n```{HOSTILE}\n{HOSTILE}\n```")
    markup = rendered(view)
    page = elements(markup)
    for attrs, text in page.scripts:  # the only scripts are the charts' JSON
        assert attrs == {"type": "application/json"}
        assert "<" not in text and json.loads(text)
    assert not [t for t, _ in page.elements if t == "img"]
    for tag, attrs in page.elements:
        assert not [a for a in attrs if a.startswith("on")], (tag, attrs)
        for a in ("href", "src"):
            assert not (attrs.get(a) or "").lower().startswith(("javascript", "data:")), (tag, attrs)
    assert "<script>alert" not in markup and "<img src=x" not in markup


def test_nul_bytes_and_lone_surrogates_in_parts_still_render():
    text = "a\x00b\ud800c"
    markup = rendered(answer(every_part_kind(text), content="text"))
    markup.encode("utf-8")  # a lone surrogate here would be a 500 for the whole page
    assert "\x00" not in markup and "ab?c" in markup


# ---- on the page --------------------------------------------------------------------------------
@pytest.mark.django_db
def test_the_conversation_page_draws_the_parts_and_loads_their_scripts(client, alice):
    conversation = Conversation.objects.create(user=alice, title="Parts")
    question = Message.objects.create(conversation=conversation, role="user", content="Chart it")
    Message.objects.create(
        conversation=conversation,
        parent_message=question,
        role="assistant",
        content="Here [1].",
        data_parts=[
            {"type": "chart", "chartType": "pie", "data": {"labels": ["a"], "series": [{"values": [1]}]}},
            SOURCES[0],
        ],
    )
    client.force_login(alice)
    page = client.get(reverse("chat:conversation", args=[conversation.id])).content.decode()
    assert 'data-chart="pie"' in page and 'data-testid="citations"' in page and 'class="cite-ref"' in page
    assert (
        "js/charts.js" in page
        and "vendor/chart.js-4.6.1/chart.umd.min.js" in page
        and "css/pygments.css" in page
    )
    assert (ROOT / "static/vendor/chart.js-4.6.1/chart.umd.min.js").stat().st_size > 100_000
    assert (ROOT / "static/vendor/chart.js-4.6.1/LICENSE.md").read_text().startswith("The MIT License")
