"""The ASGI entry the benchmark serves: Chimera's own application, plus two passive probes.

``chimera.asgi.application`` is served unchanged. This module only adds, in the daphne
process and off the request path:

- a count of the SQL statements Django sends (an ``execute_wrapper`` on every
  connection: one counter increment per statement, no timing);
- a pyinstrument profiler of the event loop thread, started and stopped by the harness.

The harness drives both with signals so the application's HTTP surface is unchanged:
SIGUSR1 writes the statement counts to ``$BENCH_STATE_DIR/queries.json``; SIGUSR2 starts
the profiler, or, when it is running, stops it and writes ``profile.txt`` / ``profile.json``.
"""

from __future__ import annotations

import json
import os
import signal
import threading
from collections import Counter
from pathlib import Path

from django.db.backends.signals import connection_created

from chimera.asgi import application  # noqa: F401 - what daphne serves

STATE_DIR = Path(os.environ.get("BENCH_STATE_DIR", "."))
_counts: Counter[str] = Counter()
_lock = threading.Lock()


def _count(execute, sql, params, many, context):
    verb = sql.lstrip().split(None, 1)[0].upper() if sql else "?"
    with _lock:
        _counts[verb] += 1
    return execute(sql, params, many, context)


def _on_connection(sender, connection, **kwargs):
    if _count not in connection.execute_wrappers:
        connection.execute_wrappers.append(_count)


connection_created.connect(_on_connection, dispatch_uid="bench.count_queries")


def _write(name: str, data) -> None:
    tmp = STATE_DIR / (name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1) if not isinstance(data, str) else data)
    tmp.replace(STATE_DIR / name)


def _dump_counts(signum, frame):
    with _lock:
        snapshot = dict(_counts)
    _write("queries.json", snapshot)


_profiler = {"p": None}


def _toggle_profile(signum, frame):
    from pyinstrument import Profiler

    profiler = _profiler["p"]
    if profiler is None:
        profiler = Profiler(interval=0.0005, async_mode="disabled")
        profiler.start()
        _profiler["p"] = profiler
        return
    _profiler["p"] = None
    session = profiler.stop()
    _write("profile.txt", profiler.output_text(unicode=True, color=False, show_all=False))
    _write("profile.json", _summary(session))


def _summary(session) -> dict:
    """Self time per function and per package, idle (the loop waiting in select) kept apart."""
    by_function: Counter[str] = Counter()
    by_package: Counter[str] = Counter()
    idle = 0.0

    def package(path: str) -> str:
        path = path or "?"
        for marker in ("site-packages/", "lib/python3.11/"):
            if marker in path:
                rest = path.split(marker, 1)[1]
                return rest.split("/", 1)[0].removesuffix(".py")
        root = str(Path(__file__).resolve().parent.parent) + "/"
        if path.startswith(root):
            return path[len(root) :].split("/", 1)[0]
        return path.rsplit("/", 1)[-1]

    def walk(frame):
        nonlocal idle
        child_time = sum(c.time for c in frame.children)
        self_time = max(0.0, frame.time - child_time)
        if self_time:
            name = frame.function or "?"
            where = f"{package(frame.file_path or '')}:{name}"
            if name in ("select", "poll", "epoll.poll", "[await]", "[self]") and "selectors" in (
                frame.file_path or ""
            ):
                idle += self_time
            elif frame.identifier.startswith("[await]") or name == "[await]":
                idle += self_time
            else:
                by_function[f"{where} ({Path(frame.file_path or '?').name}:{frame.line_no})"] += self_time
                by_package[package(frame.file_path or "")] += self_time
        for child in frame.children:
            walk(child)

    root = session.root_frame()
    if root is not None:
        walk(root)
    return {
        "duration_s": session.duration,
        "cpu_s": session.cpu_time,
        "idle_s": idle,
        "by_function": by_function.most_common(25),
        "by_package": by_package.most_common(15),
    }


signal.signal(signal.SIGUSR1, _dump_counts)
signal.signal(signal.SIGUSR2, _toggle_profile)
