"""The production layout: ``manage.py web`` (the Procfile's ``web``) runs several uvicorn (or daphne)
processes on one port, restarts one that dies and stops them all on SIGTERM; uvicorn's and granian's
own ``--workers``, the alternatives the README names, serve the page socket and the API too."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx2
import pytest
from django.test import Client

from bench.clients import PageSocket
from flags import runtime as flags
from tests.api.helpers import DONE, chat, text_of, wait_for
from tests.conftest import ROOT, free_port, server_env

pytestmark = pytest.mark.django_db(transaction=True)

HELLO = {"messages": [{"role": "user", "content": "Hello there"}]}


def children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def up(url: str, process: subprocess.Popen, log: Path) -> None:
    def answers() -> bool:
        assert process.poll() is None, log.read_text(errors="replace")
        try:
            httpx2.get(url + "/accounts/login/", timeout=2)
            return True
        except httpx2.TransportError:
            return False

    wait_for(answers, timeout=60, interval=0.2, what=f"{url} to answer")


def turns(url: str, key: str, n: int) -> list[str]:
    def one(_: int) -> str:
        with httpx2.Client(timeout=60) as http:
            response, parts = chat(http, url, HELLO, key)
        assert response.status_code == 200 and parts[-1] == DONE, response.status_code
        return text_of(parts)

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(one, range(n)))


def page_turn(url: str, user) -> str:
    client = Client()
    client.force_login(user)

    async def run() -> str:
        async with PageSocket(url, client.cookies["sessionid"].value) as socket:
            sample = await socket.turn(0)
        assert not sample.error, sample.error
        return "".join(sample.pieces)

    return asyncio.run(run())


def stop(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=40)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        raise


@pytest.mark.parametrize("server", ["uvicorn", "daphne"])
def test_several_server_processes_share_one_port_and_one_that_dies_comes_back(
    server, emu, alice, alice_key, tmp_path
):
    flags.set_flags({"rateLimit": {"enabled": False}})
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "web.log"
    with open(log, "wb") as out:
        web = subprocess.Popen(
            [
                sys.executable,
                "manage.py",
                "web",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                "2",
                "--server",
                server,
            ],
            cwd=ROOT,
            env=server_env(emu.url),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        up(url, web, log)
        workers = wait_for(
            lambda: children(web.pid) if len(children(web.pid)) == 2 else None, what="two workers"
        )
        assert len(turns(url, alice_key, 6)) == 6 and page_turn(url, alice)

        os.kill(workers[0], signal.SIGKILL)
        assert turns(url, alice_key, 2)  # the other keeps serving the port meanwhile
        again = wait_for(
            lambda: (
                children(web.pid)
                if len(children(web.pid)) == 2 and workers[0] not in children(web.pid)
                else None
            ),
            timeout=30,
            what="the dead worker started again",
        )
        assert workers[1] in again
        assert len(turns(url, alice_key, 4)) == 4
    finally:
        stop(web)
    assert web.returncode == 0
    for pid in workers + again:
        assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text()
    with httpx2.Client() as http, pytest.raises(httpx2.TransportError):
        http.get(url + "/accounts/login/", timeout=2)
    assert f"2 {server} process(es)" in log.read_text()


def test_a_port_in_use_is_a_clear_error(tmp_path):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "manage.py", "web", "--host", "127.0.0.1", "--port", str(port)],
            cwd=ROOT,
            env=server_env(""),
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode != 0 and f"Cannot listen on 127.0.0.1:{port}" in result.stderr


def serves_the_page_socket_and_the_api(command: list[str], emu, alice, alice_key, log: Path) -> None:
    """Start another ASGI server on ``chimera.asgi:application`` (``{port}`` in ``command`` is a free port):
    four API streams at once and a page turn over its WebSocket, answered whole; then SIGTERM stops it."""
    flags.set_flags({"rateLimit": {"enabled": False}})
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with open(log, "wb") as out:
        server = subprocess.Popen(
            [part.format(port=port) for part in command],
            cwd=ROOT, env=server_env(emu.url), stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        up(url, server, log)
        assert len(turns(url, alice_key, 4)) == 4
        assert page_turn(url, alice)
    finally:
        stop(server)


def test_uvicorn_with_workers_serves_the_page_socket_and_the_api(emu, alice, alice_key, tmp_path):
    serves_the_page_socket_and_the_api(
        [sys.executable, "-m", "uvicorn", "chimera.asgi:application", "--host", "127.0.0.1", "--port", "{port}",
         "--workers", "2", "--log-level", "warning"],
        emu, alice, alice_key, tmp_path / "uvicorn.log",
    )  # fmt: skip


def test_granian_with_workers_serves_the_page_socket_and_the_api(emu, alice, alice_key, tmp_path):
    serves_the_page_socket_and_the_api(
        [sys.executable, "-m", "granian", "--interface", "asgi", "chimera.asgi:application", "--host",
         "127.0.0.1", "--port", "{port}", "--workers", "2", "--log-level", "warning"],
        emu, alice, alice_key, tmp_path / "granian.log",
    )  # fmt: skip
