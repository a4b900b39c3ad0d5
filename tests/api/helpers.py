"""Reading the UI message stream off the wire, part by part, as a client would."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx2

DONE = "[DONE]"


def sse_parts(response: httpx2.Response) -> Iterator[Any]:
    """Each ``data:`` payload, decoded (``[DONE]`` stays a string), as it arrives."""
    for line in response.iter_lines():
        if not line.startswith("data: "):
            assert line == "", f"unexpected SSE line {line!r}"
            continue
        payload = line[len("data: ") :]
        yield DONE if payload == DONE else json.loads(payload)


def chat(
    http: httpx2.Client,
    url: str,
    body: dict,
    key: str | None = None,
    headers: dict | None = None,
    path: str = "/api/chat/v2",
    method: str = "POST",
) -> tuple[httpx2.Response, list[Any]]:
    """One streamed request: the response and every part up to [DONE] (or a JSON body's dict)."""
    all_headers = {**({"Authorization": f"Bearer {key}"} if key else {}), **(headers or {})}
    with http.stream(
        method, url + path, json=body if method == "POST" else None, headers=all_headers
    ) as response:
        if response.headers.get("content-type", "").startswith("text/event-stream"):
            return response, list(sse_parts(response))
        response.read()
        return response, []


def text_of(parts: list[Any]) -> str:
    """The answer as an AI SDK client shows it: the text parts not discarded by a restart."""
    texts: dict[str, str] = {}
    discarded: set[str] = set()
    for p in parts:
        if not isinstance(p, dict):
            continue
        if p["type"] == "text-delta":
            texts[p["id"]] = texts.get(p["id"], "") + p["delta"]
        elif p["type"] == "data-provider-switch" and p["data"].get("discardTextId"):
            discarded.add(p["data"]["discardTextId"])
    return "".join(t for i, t in texts.items() if i not in discarded)


def types(parts: list[Any]) -> list[str]:
    return [p["type"] if isinstance(p, dict) else p for p in parts]


def metadata_of(parts: list[Any]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for p in parts:
        if isinstance(p, dict) and p.get("type") in ("start", "message-metadata", "finish"):
            merged.update(p.get("messageMetadata") or {})
    return merged


def wait_for(
    predicate: Callable[[], Any], timeout: float = 15.0, interval: float = 0.05, what: str = "the condition"
) -> Any:
    """Poll ``predicate`` until it returns something true, and return that (bounded: a test must end)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what} ({timeout:g} s)")
        time.sleep(interval)
