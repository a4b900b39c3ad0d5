"""HTML for messages: sanitised Markdown, and the small fragments streamed over the socket.

Token fragments are built with string operations, not templates: they are on
the hot path (one per coalesced batch of tokens).
"""

from __future__ import annotations

from functools import lru_cache
from html import escape
from typing import Any

import nh3
from markdown_it import MarkdownIt
from markdown_it.common.utils import unescapeAll

from chat.frames import Memo
from chat.highlight import code_block


def _fence(self: Any, tokens: Any, idx: int, options: Any, env: Any) -> str:
    """A fenced code block drawn like a ``code`` data part: highlighted, labelled, copyable."""
    token = tokens[idx]
    info = unescapeAll(token.info).strip()
    return code_block(token.content, info.split(maxsplit=1)[0] if info else "")


def _markdown(*extras: str) -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False, "linkify": "linkify" in extras, "typographer": False})
    md.enable(["table", "strikethrough", *extras])
    md.add_render_rule("fence", _fence)
    return md


_md = _markdown()
_md_enhanced = _markdown("linkify")  # bare URLs become links (markdown parts with enhanced: true)
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
    # the code block's frame (chat.highlight.code_block)
    "div",
    "button",
    "textarea",
}
_ALLOWED_ATTRIBUTES = {
    "a": {"href", "title"},
    "code": {"class"},
    "pre": {"class"},
    "span": {"class"},
    "div": {"class", "data-testid"},
    "button": {"type", "class", "data-testid"},
    "textarea": {"class", "hidden", "readonly", "aria-hidden"},
    "th": {"align"},
    "td": {"align"},
}


@lru_cache(maxsize=2048)
def markdown_html(text: str, enhanced: bool = False) -> str:
    """Markdown → HTML with raw HTML disabled, then sanitised again (links get rel=noopener).

    Fenced code is highlighted (``chat.highlight``); ``enhanced`` also turns bare URLs into links.
    """
    return nh3.clean(
        (_md_enhanced if enhanced else _md).render(text),
        tags=_ALLOWED_TAGS,
        attributes=_ALLOWED_ATTRIBUTES,
        url_schemes={"http", "https", "mailto"},
        link_rel="noopener noreferrer nofollow",
    )


# A delta's fragment, the per-token piece: encoded once for every watcher of the answer (chat.frames).
delta_fragment = Memo(
    lambda message_id, text: (
        f'<span hx-swap-oob="beforeend:#mc-{message_id}">{escape(text, quote=False)}</span>'
    )
)
reasoning_fragment = Memo(
    lambda message_id, text: (
        f'<span hx-swap-oob="beforeend:#mr-{message_id}">{escape(text, quote=False)}</span>'
    )
)


def first_token_fragment(message_id: str) -> str:
    return f'<div id="thinking-{message_id}" hx-swap-oob="delete"></div>'


def replace_text_fragment(message_id: str, text: str) -> str:
    return (
        f'<div id="mc-{message_id}" class="message-content streaming" data-testid="message-content" '
        f'hx-swap-oob="outerHTML">{escape(text, quote=False)}</div>'
    )
