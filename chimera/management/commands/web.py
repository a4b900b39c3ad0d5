"""The production web layout (Procfile ``web``): one port, as many server processes as cores.

The command opens the listening socket once, then starts ``--workers`` ASGI server processes
(``WEB_CONCURRENCY``, default: the number of cores this process may run on) that all accept on it:
the kernel hands each new connection to one of them, so several processes share one port with no
proxy between them, each with its own event loop on its own core. The server is uvicorn (uvloop,
httptools; ``chimera.management.uvicorn_worker``), or daphne (``--server daphne`` / ``WEB_SERVER``,
``daphne --fd``): in the bench's side-by-side run uvicorn served the same answers with about a quarter
less CPU and no later first token (docs/PERFORMANCE.md, "ASGI servers"), which is what decides how
many streams a core carries. Nothing a request needs
lives in one process's memory when ``REDIS_URL`` is set (sessions, flags, limits, the breaker, the
channel layer, resumable streams), so any process may take any request; the background schedule and
the orphan sweep run in each (usage/schedule.py, chat/sweep.py), each job once per slot.

A worker that dies is started again (at most once a second per worker); SIGTERM or Ctrl+C stops them
all (each gets ``--grace`` seconds to finish its streams, then SIGKILL), and the command exits.
Unlike ``serve`` (``make run``), it neither migrates nor starts a model: production runs migrations
as a release step and talks to real providers.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

from django.core.management.base import BaseCommand, CommandError

from chimera.management import children as children_

# Each server's module and options before ``--fd N app``.
SERVERS = {
    "uvicorn": ["chimera.management.uvicorn_worker"],
    "daphne": ["daphne", "--proxy-headers"],
}


def default_workers() -> int:
    env = os.environ.get("WEB_CONCURRENCY", "").strip()
    if env:
        try:
            return max(1, int(env))
        except ValueError:
            raise CommandError(f"WEB_CONCURRENCY must be a whole number, not {env!r}") from None
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def listen(host: str, port: int, backlog: int = 2048) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise CommandError(f"Cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.listen(backlog)
    sock.set_inheritable(True)
    return sock


class Command(BaseCommand):
    help = "Serve Chimera in production: one port, several server processes (WEB_CONCURRENCY)."

    def add_arguments(self, parser):
        parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
        parser.add_argument("--host", default=os.environ.get("HOST", "0.0.0.0"))
        parser.add_argument(
            "--workers",
            type=int,
            default=None,
            help="server processes (default: WEB_CONCURRENCY, else the cores)",
        )
        parser.add_argument(
            "--server",
            choices=sorted(SERVERS),
            default=os.environ.get("WEB_SERVER", "uvicorn"),
            help="the ASGI server of each process (default: WEB_SERVER, else uvicorn)",
        )
        parser.add_argument("--app", default="chimera.asgi:application", help="the ASGI application")
        parser.add_argument("--grace", type=float, default=20.0, help="seconds each worker gets to stop")

    def handle(self, port, host, workers, server, app, grace, **options):
        workers = workers or default_workers()
        if workers < 1:
            raise CommandError("--workers must be at least 1")
        if server not in SERVERS:
            raise CommandError(f"WEB_SERVER must be one of {', '.join(sorted(SERVERS))}, not {server!r}")
        children_.interrupt_on_signals()
        sock = listen(host, port)
        command = [sys.executable, "-m", *SERVERS[server], "--fd", str(sock.fileno()), app]
        children: dict[int, subprocess.Popen] = {}
        started: dict[int, float] = {}

        def start(slot: int) -> None:
            started[slot] = time.monotonic()
            children[slot] = subprocess.Popen(command, pass_fds=(sock.fileno(),))

        self.stdout.write(
            f"Chimera: {workers} {server} process(es) on http://{host}:{port}/ (pid {os.getpid()})"
        )
        self.stdout.flush()
        try:
            for slot in range(workers):
                start(slot)
            while True:
                for slot, child in list(children.items()):
                    code = child.poll()
                    if code is None:
                        continue
                    self.stderr.write(
                        f"{server} worker {slot} (pid {child.pid}) exited with {code}; starting it again"
                    )
                    wait = 1.0 - (time.monotonic() - started[slot])
                    if wait > 0:
                        time.sleep(wait)  # a worker that cannot start is not restarted in a tight loop
                    start(slot)
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass
        finally:
            sock.close()
            children_.stop(children.values(), grace_s=grace)
