"""Text a person or a program sends that no database can store: NUL characters (PostgreSQL refuses
them in text) and unpaired UTF-16 surrogates (``"\\ud800"`` in JSON; no UTF-8 encoding exists). Both
are refused at the door with an error naming the field, on the API and on the page's socket."""

from __future__ import annotations

import re
from typing import Any

from chat.errors import TurnError

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def problem(value: str) -> str | None:
    """What is wrong with ``value`` as stored text, in words, or None."""
    found = _UNSTORABLE.search(value)
    if found is None:
        return None
    if found.group() == "\x00":
        return "contains a NUL character (\\u0000), which cannot be stored"
    return f"contains an unpaired surrogate (\\u{ord(found.group()):04x}), which is not a character"


def storable(value: str) -> str:
    """``value`` without what cannot be stored (for search boxes: find what can be found)."""
    return _UNSTORABLE.sub("", value)


def storable_data(data: Any) -> Any:
    """JSON-like ``data`` with every string (keys too) made storable: what a model or a tool wrote
    (a program's output may hold a NUL byte) must not make the final write of an answer fail."""
    if isinstance(data, str):
        return storable(data)
    if isinstance(data, dict):
        return {storable(k) if isinstance(k, str) else k: storable_data(v) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [storable_data(v) for v in data]
    return data


def check(data: Any, field: str = "") -> None:
    """Raise a 422 TurnError naming the first string (key or value) in ``data`` that cannot be stored."""
    if isinstance(data, str):
        if (why := problem(data)) is not None:
            name = field or "body"
            raise TurnError("invalid_text", f"{name} {why}. Remove it and send again.", 422, name)
    elif isinstance(data, dict):
        for key, value in data.items():
            check(key, field or "body")
            check(value, f"{field}.{key}" if field else str(key))
    elif isinstance(data, list | tuple):
        for i, value in enumerate(data):
            check(value, f"{field}[{i}]")
