"""The system under test, started the production way: Postgres, Redis, the emulator, one daphne;
and the bare relay (bench/relay.py) in a second daphne, the floor it is measured against.

Everything listens on loopback. ``Stack`` is a context manager: leaving it stops the
processes it started (by their own ids) and nothing else.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from chimera.management.children import terminate

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable


def process_tree(pid: int) -> list[int]:
    """``pid`` and every process below it (the web command's workers, granian's worker)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        for task in Path(f"/proc/{p}/task").glob("*"):
            with contextlib.suppress(OSError):
                todo.extend(int(c) for c in (task / "children").read_text().split())
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_http(url: str, proc: subprocess.Popen, what: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with code {proc.returncode}")
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except urllib.error.HTTPError:
            return  # it answers: up
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{what} did not come up at {url}")


def reset_database(database_url: str) -> None:
    """Drop and recreate the benchmark database (its name must contain 'bench')."""
    import psycopg

    parts = urlsplit(database_url)
    name = parts.path.lstrip("/")
    if "bench" not in name:
        raise SystemExit(f"refusing to recreate {name!r}: the benchmark database's name must contain 'bench'")
    admin = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def reset_redis(redis_url: str) -> None:
    """Empty the benchmark's Redis database (breaker state, flags, replay buffers of earlier runs)."""
    import redis

    if urlsplit(redis_url).path.strip("/") in ("", "0"):
        raise SystemExit("refusing to flush Redis database 0: give the benchmark its own (e.g. /2)")
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    client.close()


@dataclass
class Stack:
    database_url: str
    redis_url: str
    ttft_ms: int = 200
    chunk_ms: int = 10
    chunks: int = 50
    conn_max_age: int | None = None  # DB_CONN_MAX_AGE for daphne; None: the settings' default
    log: Path | None = None
    procs: list[subprocess.Popen] = field(default_factory=list)
    state_dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="chimera-bench-")))

    def __enter__(self) -> Stack:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def env(self) -> dict[str, str]:
        env = {
            k: v for k, v in os.environ.items() if not k.endswith("_API_KEY") and not k.endswith("_BASE_URL")
        }
        env.update(
            DEBUG="False",
            SECRET_KEY="bench-only-" + "x" * 40,
            DATABASE_URL=self.database_url,
            REDIS_URL=self.redis_url,
            CHIMERA_EMULATOR_URL=self.emulator_url,
            ALLOWED_HOSTS="127.0.0.1,localhost",
            LOG_LEVEL="WARNING",
            DJANGO_SETTINGS_MODULE="chimera.settings",
            BENCH_STATE_DIR=str(self.state_dir),
            # Background work after a turn (indexing it as knowledge, naming a new conversation)
            # is measured on its own, not inside every answer's numbers.
            CHIMERA_KNOWLEDGE_INDEX_CONVERSATIONS="False",
            CHIMERA_AUTO_TITLES="False",
            PYTHONPATH=str(ROOT),
        )
        if self.conn_max_age is not None:
            env["DB_CONN_MAX_AGE"] = str(self.conn_max_age)
        return env

    def start(self) -> None:
        self.emulator_port = free_port()
        self.emulator_url = f"http://127.0.0.1:{self.emulator_port}"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        out = open(self.log, "ab") if self.log else subprocess.DEVNULL
        reset_database(self.database_url)
        reset_redis(self.redis_url)
        emulator = subprocess.Popen(
            [
                PY,
                "-m",
                "providers.emulator",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.emulator_port),
                "--ttft-ms",
                str(self.ttft_ms),
                "--chunk-ms",
                str(self.chunk_ms),
                "--chunks",
                str(self.chunks),
            ],
            cwd=ROOT,
            env=self.env(),
            stdout=out,
            stderr=out,
        )
        self.procs.append(emulator)
        prepared = subprocess.run(
            [PY, "bench/prepare.py"], cwd=ROOT, env=self.env(), capture_output=True, text=True, timeout=180
        )
        if prepared.returncode != 0:
            raise RuntimeError("bench/prepare.py failed:\n" + prepared.stderr[-3000:])
        info = json.loads(prepared.stdout.strip().splitlines()[-1])
        self.api_key, self.session = info["api_key"], info["session"]
        _wait_http(self.emulator_url + "/_control/health", emulator, "the emulator")
        self.daphne = subprocess.Popen(
            [PY, "-m", "daphne", "-b", "127.0.0.1", "-p", str(self.port), "bench.asgi:application"],
            cwd=ROOT,
            env=self.env(),
            stdout=out,
            stderr=out,
        )
        self.procs.append(self.daphne)
        # The bare relay (bench/relay.py): the same server, the same SDK client, nothing else.
        self.relay_port = free_port()
        self.relay_url = f"http://127.0.0.1:{self.relay_port}"
        relay_env = {k: v for k, v in self.env().items() if k != "DJANGO_SETTINGS_MODULE"}
        relay_env["RELAY_UPSTREAM_URL"] = self.emulator_url + "/groq/openai/v1"
        self.relay = subprocess.Popen(
            [PY, "-m", "daphne", "-b", "127.0.0.1", "-p", str(self.relay_port), "bench.relay:application"],
            cwd=ROOT,
            env=relay_env,
            stdout=out,
            stderr=out,
        )
        self.procs.append(self.relay)
        _wait_http(self.url + "/accounts/login/", self.daphne, "daphne")
        _wait_http(self.relay_url + "/health", self.relay, "the relay's daphne")

    def set_flags(self, value: dict) -> None:
        """Merge ``value`` into the stack's runtime flags (``manage.py load_flags --merge``, as the
        runbook does), then let the flags' cache time pass: daphne answers with them after it."""
        from flags.runtime import TTL

        with tempfile.NamedTemporaryFile("w", suffix=".json") as f:
            json.dump(value, f)
            f.flush()
            subprocess.run(
                [PY, "manage.py", "load_flags", "--merge", f.name],
                cwd=ROOT,
                env=self.env(),
                check=True,
                capture_output=True,
                timeout=120,
            )
        time.sleep(TTL + 0.5)

    def stop(self) -> None:
        terminate(reversed(self.procs), grace_s=10)
        self.procs.clear()

    # ---- probes of the daphne processes ----------------------------------------------
    def pid_of(self, side: str) -> int:
        """The server process a side is measured in: the relay's daphne for ``relay``, else Chimera's."""
        return self.relay.pid if side == "relay" else self.daphne.pid

    def cpu_ticks(self, pid: int | None = None) -> int:
        """utime + stime of a process (all its threads; default Chimera's daphne), in clock ticks."""
        pid = self.daphne.pid if pid is None else pid
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])

    def rss_kib(self, pid: int | None = None) -> int:
        pid = self.daphne.pid if pid is None else pid
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return 0

    def _signal_and_read(self, signum: int, name: str, timeout: float = 10.0):
        path = self.state_dir / name
        path.unlink(missing_ok=True)
        os.kill(self.daphne.pid, signum)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if path.exists():
                return path
            time.sleep(0.02)
        raise RuntimeError(f"daphne did not write {name}")

    def query_counts(self) -> dict[str, int]:
        return json.loads(self._signal_and_read(signal.SIGUSR1, "queries.json").read_text())

    def start_profile(self) -> None:
        os.kill(self.daphne.pid, signal.SIGUSR2)

    def stop_profile(self) -> tuple[str, dict]:
        summary = json.loads(self._signal_and_read(signal.SIGUSR2, "profile.json", timeout=60).read_text())
        return (self.state_dir / "profile.txt").read_text(), summary

    def pg_stats(self) -> dict[str, int]:
        """Server-side counters of the benchmark database (transactions and rows)."""
        import psycopg

        name = urlsplit(self.database_url).path.lstrip("/")
        admin = urlunsplit(urlsplit(self.database_url)._replace(path="/postgres"))
        with psycopg.connect(admin, autocommit=True) as conn:
            row = conn.execute(
                "select xact_commit, xact_rollback, tup_inserted, tup_updated, tup_fetched, tup_returned "
                "from pg_stat_database where datname = %s",
                (name,),
            ).fetchone()
        keys = ("xact_commit", "xact_rollback", "tup_inserted", "tup_updated", "tup_fetched", "tup_returned")
        return dict(zip(keys, row, strict=True))


@dataclass
class Beside:
    """What the harness needs of a stack, for server processes started beside the stack's own daphne (the
    production layout, the other ASGI servers): the same emulator, relay, accounts and state directory;
    CPU and memory summed over ``measured()``, the ``root`` process's tree; no SQL statement counts."""

    stack: Stack

    def __post_init__(self) -> None:
        self.emulator_url = self.stack.emulator_url
        self.relay_url = self.stack.relay_url
        self.api_key, self.session = self.stack.api_key, self.stack.session
        self.state_dir = self.stack.state_dir

    @property
    def root(self) -> subprocess.Popen:
        raise NotImplementedError

    def measured(self) -> list[int]:
        return process_tree(self.root.pid)

    def pid_of(self, side: str) -> int:
        return self.root.pid

    def cpu_ticks(self, pid: int | None = None) -> int:
        return sum(self.stack.cpu_ticks(p) for p in self.measured() if Path(f"/proc/{p}").exists())

    def rss_kib(self, pid: int | None = None) -> int:
        return sum(self.stack.rss_kib(p) for p in self.measured() if Path(f"/proc/{p}").exists())

    def query_counts(self) -> dict[str, int]:
        return {}
