"""Child processes of ``serve`` (``make run``) and ``web`` (the Procfile): stopped together, whatever
stops the parent.

``interrupt_on_signals`` turns SIGINT and SIGTERM into KeyboardInterrupt — also when the command was
started with SIGINT ignored (a background job of a shell without job control, as some CI runners start
commands: Python then never installs its own handler, and daphne would ignore it too). ``stop`` sends
each child SIGTERM (which they all handle), waits up to the grace period, then SIGKILLs what is left
(``terminate``); a second Ctrl+C meanwhile does not cut it short.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterable


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def interrupt_on_signals() -> None:
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)


def stop(children: Iterable[subprocess.Popen], grace_s: float) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    terminate(children, grace_s)


def terminate(children: Iterable[subprocess.Popen], grace_s: float) -> list[subprocess.Popen]:
    """SIGTERM to each child still running, up to ``grace_s`` for them all to end, then SIGKILL to what
    is left; returns the children that had to be killed. (Also the bench's and the tests' servers.)"""
    children = list(children)
    for child in children:
        if child.poll() is None:
            child.terminate()
    deadline = time.monotonic() + grace_s
    killed = []
    for child in children:
        try:
            child.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
            killed.append(child)
    return killed
