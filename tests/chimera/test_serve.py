"""`make run`'s command, as a newcomer runs it: with PORT set, with the model's port taken, and Ctrl+C
stopping everything it started. Runs the real command (and the real local model) in a process group
of its own, the way a terminal runs it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]
# A newcomer's environment: no provider keys, no database or Redis settings (the embedded defaults).
KEEP = ("PATH", "HOME", "LANG", "TMPDIR")


def serve(tmp_path: Path, sigint_ignored: bool = False, **env: str) -> subprocess.Popen:
    environ = {name: os.environ[name] for name in KEEP if name in os.environ}
    environ |= {
        "PYTHONUNBUFFERED": "1",
        "DEBUG": "True",
        "SQLITE_PATH": str(tmp_path / "chimera.sqlite3"),
    } | env
    return subprocess.Popen(
        [sys.executable, "manage.py", "serve"],
        cwd=ROOT,
        env=environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group, as in a terminal: Ctrl+C reaches all of it
        # As a shell without job control starts a background job (some CI runners do): SIGINT ignored.
        preexec_fn=(lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)) if sigint_ignored else None,
    )


def read_until(process: subprocess.Popen, needle: str) -> str:
    """The command's output up to the line holding `needle` (or to its end); the rest is read on in
    the background, so a full pipe never blocks the command (its children's logs go there too)."""
    seen = []
    for line in process.stdout:
        seen.append(line)
        if needle in line:
            break
    threading.Thread(target=process.stdout.read, daemon=True).start()
    return "".join(seen)


def answers(url: str) -> bool:
    try:
        urllib.request.urlopen(url, timeout=5)
    except urllib.error.HTTPError:
        return True  # it answered, with a status
    except OSError:
        return False
    return True


def listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def wait_for_page(url: str, process: subprocess.Popen) -> None:
    """Daphne is started after the banner; poll (bounded by the process being alive) until it answers."""
    while not answers(url):
        assert process.poll() is None, process.stdout.read()


@pytest.mark.parametrize(
    ("host", "sigint_ignored"),
    [("127.0.0.1", False), ("0.0.0.0", True)],
    ids=["loopback", "all-ignoring-sigint"],
)
def test_make_run_with_port_and_host_set_serves_there_and_ctrl_c_stops_everything(
    tmp_path, host, sigint_ignored
):
    web, model = free_port(), free_port()
    process = serve(
        tmp_path,
        sigint_ignored,
        PORT=str(web),
        HOST=host,
        CHIMERA_LOCAL_MODEL_URL=f"http://127.0.0.1:{model}/v1",
    )
    try:
        output = read_until(process, "Ctrl+C stops")
        assert f"http://{host}:{web}/" in output, output
        assert "local model SmolLM2-135M-Instruct answers" in output
        wait_for_page(f"http://127.0.0.1:{web}/accounts/login/", process)
        assert answers(f"http://127.0.0.1:{model}/v1/models")  # the model kept its own port
    finally:
        os.killpg(process.pid, signal.SIGINT)  # Ctrl+C
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)  # fail, but leave nothing behind for the next tests
            raise
    assert not listening(web) and not listening(model)  # nothing left behind


def test_a_taken_model_port_is_named_and_nothing_is_left_running(tmp_path):
    web = free_port()
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        model = squatter.getsockname()[1]
        process = serve(tmp_path, PORT=str(web), CHIMERA_LOCAL_MODEL_URL=f"http://127.0.0.1:{model}/v1")
        output, _ = process.communicate(timeout=120)
    assert process.returncode != 0
    assert f"needs port {model}" in output and "already in use" in output, output
    assert not listening(web)


def test_a_taken_web_port_is_named(tmp_path):
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        web = squatter.getsockname()[1]
        process = serve(tmp_path, PORT=str(web))
        output, _ = process.communicate(timeout=120)
    assert process.returncode != 0
    assert f"Port {web} on 127.0.0.1 is already in use" in output, output
