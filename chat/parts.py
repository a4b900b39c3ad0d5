"""An answer's data parts as the page draws them: checked, numbered, and made into template context.

``renderable_parts`` turns a message's stored ``data_parts`` (``chat.schemas``) into one dict per
part, in order, each naming its partial (``templates/chat/partials/parts/``). Stored parts are
treated as untrusted: they may come from a model, a tool or an API client. So URLs are checked
(``safe_url``), charts are validated against their shape (a bad one becomes a table and a note),
components come from a fixed registry (an unknown one is shown as data, never run), and every
string reaches the page through the template engine's escaping or a sanitiser.

Thinking, errors and provider switches are drawn where they always were (``_message.html``); the
citations of ``source-document`` parts are drawn once, as a numbered list under the answer.
"""

from __future__ import annotations

import json
import re
import unicodedata
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from chat.highlight import code_block
from chat.render import markdown_html
from chat.schemas import MAX_CHART_SERIES, ChartPart, CodePart, MediaPart, SourcePart

PARTIALS = "chat/partials/parts/"
# Drawn elsewhere in _message.html, not in the parts loop.
DRAWN_ELSEWHERE = frozenset({"thinking", "error", "provider-switch"})
MAX_URL_CHARS = 2048
MAX_TABLE_ROWS = 500  # rows shown in a table (a chart's numbers, a table component)
MAX_DATA_CHARS = 20_000  # JSON shown as data (unknown components, tool arguments and results)


# ---- text and URLs --------------------------------------------------------------------------
def scrub(value: Any) -> Any:
    """Strings made safe to encode and show: NULs dropped, lone surrogates replaced (recursively).

    A lone surrogate (possible in JSON, and in a SQLite-stored part) would make the response fail
    to encode as UTF-8: a 500 for the whole page instead of one odd character.
    """
    if isinstance(value, str):
        if value.isascii():
            return value.replace("\x00", "")
        return value.encode("utf-8", "replace").decode("utf-8").replace("\x00", "")
    if isinstance(value, list):
        return [scrub(v) for v in value]
    if isinstance(value, dict):
        return {scrub(k): scrub(v) for k, v in value.items()}
    return value


def _invisible_or_space(ch: str) -> bool:
    # Controls, format characters (zero-width, bidi overrides) and every kind of space.
    return ch.isspace() or unicodedata.category(ch) in {"Cc", "Cf", "Zs", "Zl", "Zp", "Co", "Cs", "Cn"}


def safe_url(url: Any, *, allow_http: bool = False) -> str | None:
    """``url`` if a page may load or link it, else None.

    Allowed: ``https://host/...`` (``http://`` too with ``allow_http``, for links to cited pages),
    or a same-origin path starting with a single ``/``. Refused: any other scheme (``javascript:``,
    ``data:``, ``vbscript:``), protocol-relative ``//host`` and ``/\\host`` (browsers read ``\\``
    as ``/``), credentials in the URL, non-ASCII host names (look-alike domains), and any space,
    control or invisible character anywhere — browsers drop some of those silently, which is how
    ``java\\tscript:`` gets through naive checks. Nothing is stripped: a URL is taken as given.
    """
    if not isinstance(url, str) or not url or len(url) > MAX_URL_CHARS:
        return None
    if any(_invisible_or_space(ch) for ch in url) or "\\" in url:
        return None
    if url.startswith("/"):
        return url if not url.startswith("//") else None
    try:
        parts = urlsplit(url)
        port = parts.port  # raises on a malformed port
    except ValueError:
        return None
    schemes = {"https", "http"} if allow_http else {"https"}
    if parts.scheme.lower() not in schemes or not parts.netloc:
        return None
    host = parts.hostname or ""
    if "@" in parts.netloc or not host or not host.isascii() or port == 0:
        return None
    return url


# ---- charts -----------------------------------------------------------------------------------
def _number(v: Any) -> str:
    if isinstance(v, float) and v.is_integer() and abs(v) < 1e15:
        return str(int(v))
    if isinstance(v, float):
        return format(v, ".10g")
    return str(v)


def _cell(v: Any) -> dict[str, Any]:
    """One table cell: its text, and whether it is a number (right-aligned)."""
    if isinstance(v, bool):
        return {"text": "true" if v else "false", "num": False}
    if isinstance(v, int | float):
        return {"text": _number(float(v) if isinstance(v, float) else v), "num": True}
    if v is None:
        return {"text": "", "num": False}
    if isinstance(v, str):
        return {"text": v, "num": False}
    return {"text": json.dumps(v, ensure_ascii=False, default=str)[:500], "num": False}


def _table(columns: list[str], rows: list[list[Any]]) -> dict[str, Any]:
    shown = rows[:MAX_TABLE_ROWS]
    return {
        "columns": columns,
        "rows": [[_cell(v) for v in row] for row in shown],
        "hidden_rows": len(rows) - len(shown),
    }


def _chart_table(chart: ChartPart) -> dict[str, Any]:
    data = chart.data
    names = [s.name or f"Series {i + 1}" for i, s in enumerate(data.series)]
    if chart.chartType == "scatter":
        rows = [[name, x, y] for name, s in zip(names, data.series, strict=True) for x, y in s.points or []]
        return _table(["Series", data.xLabel or "x", data.yLabel or "y"], rows)
    gap = "—"  # a null value: a gap in the line
    rows = [
        [label, *(gap if not s.values or s.values[i] is None else s.values[i] for s in data.series)]
        for i, label in enumerate(data.labels)
    ]
    return _table([data.xLabel or "", *names], rows)


def _salvaged_table(data: Any) -> dict[str, Any] | None:
    """What can be read of chart data that failed validation, as a table (None: nothing usable)."""
    if not isinstance(data, dict) or not isinstance(data.get("series"), list):
        return None
    series = [s for s in data["series"][:MAX_CHART_SERIES] if isinstance(s, dict)]
    if not series:
        return None
    names = [str(s.get("name") or f"Series {i + 1}")[:200] for i, s in enumerate(series)]

    def listed(value: Any) -> list[Any]:
        return value if isinstance(value, list) else []

    if any(isinstance(s.get("points"), list) for s in series):
        rows = [
            [name, *(p if isinstance(p, list) else [p])[:2]]
            for name, s in zip(names, series, strict=True)
            for p in listed(s.get("points"))[: MAX_TABLE_ROWS + 1]
        ]
        return _table(["Series", "x", "y"], rows)
    labels = listed(data.get("labels"))
    values = [listed(s.get("values")) for s in series]
    length = max([len(labels), *(len(v) for v in values)])
    rows = [
        [labels[i] if i < len(labels) else "", *(v[i] if i < len(v) else None for v in values)]
        for i in range(min(length, MAX_TABLE_ROWS + 1))
    ]
    return _table(["", *names], rows)


def _first_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(p) for p in error.get("loc", ()))
    message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
    return f"{where}: {message}" if where else message


def chart_context(part: dict[str, Any]) -> dict[str, Any]:
    """A chart part as the chart partial needs it: the validated data for the browser, and a table.

    Invalid data gives ``ok: False``, a note saying what is wrong, and whatever table can be read.
    """
    try:
        chart = ChartPart.model_validate(part)
    except ValidationError as exc:
        data = part.get("data")
        return {
            "ok": False,
            "chartType": str(part.get("chartType") or "chart")[:20],
            "title": str(data.get("title") or "")[:200] if isinstance(data, dict) else "",
            "note": f"This chart could not be drawn ({_first_error(exc)}).",
            "table": _salvaged_table(data),
            "raw": pretty_json(data),
        }
    return {
        "ok": True,
        "chartType": chart.chartType,
        "title": chart.data.title or "",
        "data": chart.data.model_dump(mode="json", exclude_none=True),
        "table": _chart_table(chart),
    }


# ---- components -------------------------------------------------------------------------------
class _Props(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TableProps(_Props):
    """``table``: columns, rows of cells (any JSON scalar; nested values shown as JSON), a caption."""

    columns: list[str] = Field(max_length=100)
    rows: list[list[Any]] = Field(max_length=10_000)
    caption: str | None = None


class CodeResultProps(_Props):
    """``code-result``: what a run of code printed and how it ended."""

    language: str | None = None
    stdout: str = ""
    stderr: str = ""
    exitCode: int | None = None
    signal: str | None = None
    durationMs: int | None = None
    timedOut: bool = False
    truncated: bool = False
    limit: str | None = None  # which limit stopped it (timeout, memory, output, processes, disk)
    message: str | None = None  # that, in words


class KeyValueItem(_Props):
    label: str
    value: Any = None


class KeyValueProps(_Props):
    """``key-value``: labelled values in order (a list, since Postgres jsonb does not keep key order)."""

    items: list[KeyValueItem] = Field(max_length=500)
    title: str | None = None


# name -> (props model, template). Only these are drawn; any other name is shown as data.
COMPONENTS: dict[str, tuple[type[_Props], str]] = {
    "table": (TableProps, "chat/partials/components/table.html"),
    "code-result": (CodeResultProps, "chat/partials/components/code-result.html"),
    "key-value": (KeyValueProps, "chat/partials/components/key-value.html"),
}


def _component_props(name: str, props: _Props) -> dict[str, Any]:
    if isinstance(props, TableProps):
        width = len(props.columns)
        if any(len(row) > width for row in props.rows):
            raise ValueError(f"a row has more cells than the {width} columns")
        padded = [row + [None] * (width - len(row)) for row in props.rows]
        return {"caption": props.caption, **_table(props.columns, padded)}
    if isinstance(props, KeyValueProps):
        return {"title": props.title, "items": [{"label": i.label, **_cell(i.value)} for i in props.items]}
    if isinstance(props, CodeResultProps):
        return {
            **props.model_dump(),
            "stdout": pretty_json(props.stdout),
            "stderr": pretty_json(props.stderr),
        }
    return props.model_dump()


def component_context(part: dict[str, Any]) -> dict[str, Any]:
    """A component part: its registered template and checked props, or its props shown as data."""
    name = str(part.get("component") or "")[:100]
    props = part.get("props")
    entry = COMPONENTS.get(name)
    note = f"Unknown component “{name}”: its data is shown as is."
    if entry is not None:
        model, template = entry
        try:
            return {
                "known": True,
                "name": name,
                "component_template": template,
                "props": _component_props(name, model.model_validate(props)),
            }
        except ValidationError as exc:
            note = f"The “{name}” component's data is not in the expected shape ({_first_error(exc)})."
        except ValueError as exc:
            note = f"The “{name}” component's data is not in the expected shape ({exc})."
    return {"known": False, "name": name, "note": note, "raw": pretty_json(props)}


# ---- media, code, markdown ---------------------------------------------------------------------
def media_context(part: dict[str, Any]) -> dict[str, Any]:
    """An image, video or audio part; a URL that is not safe to load is shown as text with a note."""
    try:
        media = MediaPart.model_validate(part)
    except ValidationError as exc:
        return {
            "ok": False,
            "mediaType": "media",
            "url": str(part.get("url") or "")[:MAX_URL_CHARS],
            "note": f"This media part is invalid ({_first_error(exc)}).",
        }
    meta = media.metadata if isinstance(media.metadata, dict) else {}
    alt = meta.get("alt") or meta.get("title") or meta.get("caption") or ""
    caption = meta.get("caption") or meta.get("title") or ""
    url = safe_url(media.url)
    return {
        "ok": url is not None,
        "mediaType": media.mediaType,
        "url": url or media.url[:MAX_URL_CHARS],
        "alt": str(alt)[:500],
        "caption": str(caption)[:500],
        "note": "" if url else "Not loaded: only https:// addresses or this site's own paths are shown.",
    }


def code_context(part: dict[str, Any], message_id: Any, index: int) -> dict[str, Any]:
    code = CodePart.model_validate(part)
    run = {"action": "run_code", "message_id": str(message_id), "part": index} if code.executable else None
    return {
        "html": code_block(code.code, code.language, run=run),
        "executable": bool(code.executable),
        "output_id": f"code-output-{message_id}-{index}",
    }


# ---- citations ---------------------------------------------------------------------------------
def citations(data_parts: list[Any], message_id: Any) -> list[dict[str, Any]]:
    """The answer's sources, numbered from 1 in order of first appearance (one number per sourceId)."""
    seen: dict[str, dict[str, Any]] = {}
    for raw in data_parts:
        if not isinstance(raw, dict) or raw.get("type") != "source-document":
            continue
        try:
            source = SourcePart.model_validate(raw)
        except ValidationError:
            continue
        if source.sourceId in seen:
            continue
        n = len(seen) + 1
        seen[source.sourceId] = {
            "n": n,
            "anchor": f"cite-{message_id}-{n}",
            "title": source.title[:500] or source.sourceId[:200],
            "url": safe_url(source.url, allow_http=True) if source.url else None,
            "excerpt": (source.excerpt or "")[:5000],
        }
    return list(seen.values())


# A tag in sanitised (nh3) HTML: attribute values are always quoted, and may contain '>'.
_TAG = re.compile(r"""<(/?)([a-zA-Z][a-zA-Z0-9-]*)(?:[^>"']|"[^"]*"|'[^']*')*>""")
_MARKER = re.compile(r"\[(\d{1,4})\]")
_NO_LINKS_INSIDE = frozenset({"a", "code", "pre", "textarea", "button", "script", "style"})


def link_citations(html: str, message_id: Any, count: int) -> str:
    """``[n]`` in the answer's text becomes a link to citation n, for 1 <= n <= ``count``.

    Runs on sanitised HTML: only text between tags is touched, never attributes, and never text
    inside links or code.
    """
    if count <= 0 or "[" not in html:
        return html

    def link(m: re.Match[str]) -> str:
        n = int(m.group(1))
        if not 1 <= n <= count:
            return m.group(0)
        return f'<a href="#cite-{message_id}-{n}" class="cite-ref" data-testid="cite-ref">[{n}]</a>'

    out: list[str] = []
    skip = 0  # depth inside elements whose text must not gain links
    pos = 0
    for tag in _TAG.finditer(html):
        text = html[pos : tag.start()]
        out.append(_MARKER.sub(link, text) if skip == 0 else text)
        out.append(tag.group(0))
        if tag.group(2).lower() in _NO_LINKS_INSIDE:
            skip = max(0, skip - 1) if tag.group(1) else skip + 1
        pos = tag.end()
    tail = html[pos:]
    out.append(_MARKER.sub(link, tail) if skip == 0 else tail)
    return "".join(out)


# ---- the parts of one message -----------------------------------------------------------------
def pretty_json(value: Any) -> str:
    """JSON for people (indented, non-ASCII kept), cut at ``MAX_DATA_CHARS``; a string as it is."""
    if isinstance(value, str):
        text = value
    else:
        try:
            text = json.dumps(value, indent=2, ensure_ascii=False, default=str)
        except (TypeError, ValueError):
            text = repr(value)
    text = scrub(text)
    if len(text) > MAX_DATA_CHARS:
        return text[:MAX_DATA_CHARS] + f"\n… ({len(text) - MAX_DATA_CHARS:,} more characters)"
    return text


def thought_for(duration_ms: Any) -> str:
    """A thinking duration in ms as people read it: ``2.3 s``, ``1 min 5 s`` ('' if unknown)."""
    if isinstance(duration_ms, bool) or not isinstance(duration_ms, int | float) or duration_ms < 0:
        return ""
    seconds = duration_ms / 1000
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest} s" if rest else f"{minutes} min"


def renderable_parts(data_parts: list[Any] | None, message_id: Any) -> list[dict[str, Any]]:
    """The parts the page draws under an answer, in order, each with its ``template``.

    Source documents become one numbered list, last. A part that does not validate is left out,
    except a chart (drawn as a table with a note) and a component (shown as data).
    """
    out: list[dict[str, Any]] = []
    parts = scrub(list(data_parts or []))
    sources = citations(parts, message_id)
    for index, raw in enumerate(parts):
        kind = raw.get("type") if isinstance(raw, dict) else None
        if not isinstance(kind, str) or kind in DRAWN_ELSEWHERE or kind == "source-document":
            continue
        try:
            if kind == "chart":
                context = chart_context(raw)
            elif kind == "code":
                context = code_context(raw, message_id, index)
            elif kind == "component":
                context = component_context(raw)
            elif kind == "markdown":
                content = raw.get("content")
                if not isinstance(content, str):
                    continue
                html = markdown_html(content, bool(raw.get("enhanced")))
                context = {"html": link_citations(html, message_id, len(sources))}
            elif kind == "media":
                context = media_context(raw)
            elif kind == "tool-call":
                context = dict(raw)  # the standalone tool card partial takes the part as it is
            else:
                continue
        except ValidationError:
            continue
        out.append(
            {**context, "kind": kind, "index": index, "template": f"{PARTIALS}{kind.replace('-', '_')}.html"}
        )
    if sources:
        out.append({"kind": "sources", "citations": sources, "template": f"{PARTIALS}sources.html"})
    return out
