"""HTML for messages: sanitised Markdown, and the small fragments streamed over the socket.

Token fragments are built with string operations, not templates: they are on
the hot path (one per coalesced batch of tokens).
"""

from __future__ import annotations

from functools import lru_cache
from html import escape

import nh3
from markdown_it import MarkdownIt

_md = (
    MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
    .enable("table")
    .enable("strikethrough")
)
_ALLOWED_TAGS = {
    "p",
    "br",
    "hr",
    "em",
    "strong",
    "del",
    "s",
    "code",
    "pre",
    "blockquote",
    "ul",
    "ol",
    "li",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "a",
    "table",
    "thead",
    "tbody",
    "tr",
    "th",
    "td",
    "span",
}


@lru_cache(maxsize=2048)
def markdown_html(text: str) -> str:
    """Markdown → HTML with raw HTML disabled, then sanitised again (links get rel=noopener)."""
    return nh3.clean(
        _md.render(text),
        tags=_ALLOWED_TAGS,
        attributes={
            "a": {"href", "title"},
            "code": {"class"},
            "span": {"class"},
            "th": {"align"},
            "td": {"align"},
        },
        url_schemes={"http", "https", "mailto"},
        link_rel="noopener noreferrer nofollow",
    )


def delta_fragment(message_id: str, text: str) -> str:
    return f'<span hx-swap-oob="beforeend:#mc-{message_id}">{escape(text, quote=False)}</span>'


def reasoning_fragment(message_id: str, text: str) -> str:
    return f'<span hx-swap-oob="beforeend:#mr-{message_id}">{escape(text, quote=False)}</span>'


def first_token_fragment(message_id: str) -> str:
    return f'<div id="thinking-{message_id}" hx-swap-oob="delete"></div>'


def replace_text_fragment(message_id: str, text: str) -> str:
    return (
        f'<div id="mc-{message_id}" class="message-content streaming" data-testid="message-content" '
        f'hx-swap-oob="outerHTML">{escape(text, quote=False)}</div>'
    )
