"""Filters for the data-part partials (``templates/chat/partials/parts/``)."""

from __future__ import annotations

from typing import Any

from django import template

from chat import parts

register = template.Library()


@register.filter
def pretty_json(value: Any) -> str:
    """Indented JSON for a ``<pre>`` (escaped by the template engine like any other text)."""
    return parts.pretty_json(value)


@register.filter
def duration_ms(value: Any) -> str:
    """Milliseconds as people read them: ``340 ms``, ``2.3 s``, ``1 min 5 s``."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 1000:
        return f"{value} ms"
    return parts.thought_for(value)
