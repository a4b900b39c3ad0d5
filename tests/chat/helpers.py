"""Driving the page's WebSocket like a browser does: a real session cookie, htmx-shaped JSON."""

from __future__ import annotations

import asyncio
import json
import re

from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.test import Client

from chimera.asgi import application


async def session_cookie(user) -> str:
    def login():
        client = Client()
        client.force_login(user)
        return client.cookies["sessionid"].value

    return await sync_to_async(login)()


async def connect(user=None) -> WebsocketCommunicator:
    headers = [(b"origin", b"http://127.0.0.1"), (b"host", b"127.0.0.1")]
    if user is not None:
        headers.append((b"cookie", f"sessionid={await session_cookie(user)}".encode()))
    communicator = WebsocketCommunicator(application, "/ws/chat/", headers=headers)
    return communicator


async def send(communicator, **fields) -> None:
    await communicator.send_to(text_data=json.dumps({**fields, "HEADERS": {"HX-Request": "true"}}))


async def frames_until(communicator, pattern: str, timeout: float = 20.0) -> list[str]:
    """Collect frames until one matches ``pattern`` (a regex)."""
    frames: list[str] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        remaining = deadline - loop.time()
        if remaining <= 0:
            raise AssertionError(f"no frame matched {pattern!r}; got:\n" + "\n".join(frames))
        frame = await communicator.receive_from(timeout=remaining)
        frames.append(frame)
        if re.search(pattern, frame):
            return frames


def streamed_text(frames: list[str], message_id: str) -> str:
    """The text the page appended to the answer, from the delta fragments."""
    import html

    pieces = re.findall(
        rf'<span hx-swap-oob="beforeend:#mc-{message_id}">(.*?)</span>', "".join(frames), re.S
    )
    return html.unescape("".join(pieces))


def status_of(frames: list[str]) -> dict[str, str]:
    match = None
    for frame in frames:
        for m in re.finditer(r'<div id="turn-status"[^>]*>', frame):
            match = m.group(0)
    if match is None:
        return {}
    return dict(re.findall(r'data-([a-z-]+)="([^"]*)"', match))
