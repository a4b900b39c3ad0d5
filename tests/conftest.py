"""Shared fixtures: personas, a live daphne server, Chromium, and the emulator (tests.fixtures.emulator).

Services are real: Postgres and Redis when DATABASE_URL / REDIS_URL are set (CI
always sets them), SQLite and local memory otherwise. LLM providers are the only
thing replaced, by the emulator over HTTP.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from django.conf import settings as django_settings

pytest_plugins = ["tests.fixtures.emulator"]

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "correct-horse-battery"

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


def pytest_sessionstart(session):
    # A SQLite test database is a file shared with the live server; stale WAL files from an
    # earlier run make SQLite report "disk I/O error" on the recreated database.
    # Files of test runs that ended more than an hour ago go too.
    for leftover in (ROOT / "var").glob("test-*.sqlite3*"):
        if f"test-{os.getpid()}." in leftover.name or time.time() - leftover.stat().st_mtime > 3600:
            leftover.unlink(missing_ok=True)


@pytest.fixture(scope="session", autouse=True)
def _close_turn_database_threads(django_db_setup):
    """The turn threads and the knowledge threads keep their connections open (chat/db.py,
    knowledge/offload.py); close them before the test database is dropped."""
    yield
    from chat import db
    from knowledge import offload

    db.close_all()
    offload.close_all()


# ---- ordering: browser tests last (ENVIRONMENT.md pothole 6) ---------------------------
def pytest_addoption(parser):
    parser.addoption(
        "--browsers",
        choices=("all", "none", "only"),
        default="all",
        help="run the browser tests too (all, last), not at all (none), or only them (only). "
        "`make test` runs the rest in two processes, then the browser tests in one: Playwright's "
        "sync API leaves an event loop running in its process, which no async test may follow.",
    )


def _is_browser(item) -> bool:
    return "page" in getattr(item, "fixturenames", ()) or item.get_closest_marker("e2e") is not None


def pytest_collection_modifyitems(config, items):
    which = config.getoption("--browsers")
    if which != "all":
        keep = [item for item in items if _is_browser(item) == (which == "only")]
        dropped = [item for item in items if _is_browser(item) != (which == "only")]
        if dropped:
            config.hook.pytest_deselected(items=dropped)
        items[:] = keep
    items.sort(key=_is_browser)


# ---- the guard: no test may reach a real provider --------------------------------------
@pytest.fixture(autouse=True)
def _no_real_providers(settings, request):
    """Every provider points at the emulator (or nowhere): keys are dummies, base URLs local."""
    for name in ("GROQ_API_KEY", "GOOGLE_API_KEY", "ANTHROPIC_API_KEY", "AI_GATEWAY_API_KEY"):
        setattr(settings, name, "")
    for name in ("GROQ_BASE_URL", "GEMINI_BASE_URL", "ANTHROPIC_BASE_URL", "AI_GATEWAY_BASE_URL"):
        setattr(settings, name, "")
    if "emulator" in request.fixturenames or "emu" in request.fixturenames:
        emulator = request.getfixturevalue("emulator")
        settings.CHIMERA_EMULATOR_URL = emulator.url
    else:
        settings.CHIMERA_EMULATOR_URL = ""
        # The local model URL goes nowhere unless a test starts the local model.
        settings.CHIMERA_LOCAL_MODEL_URL = "http://127.0.0.1:9/v1"


@pytest.fixture(autouse=True)
def _fresh_shared_state():
    """Limits, flags, breaker state and cached answers must not leak between tests."""
    from django.core.cache import cache

    from flags import runtime as flags

    cache.clear()
    flags.invalidate()
    _reset_provider_state()
    yield
    _reset_provider_state()


def _reset_provider_state() -> None:
    try:
        from providers import router
    except ImportError:
        return
    reset = getattr(router, "reset_for_tests", None)
    if reset is not None:
        reset()


# ---- personas --------------------------------------------------------------------------
@pytest.fixture
def alice(django_user_model):
    return django_user_model.objects.create_user("alice", "alice@example.com", PASSWORD)


@pytest.fixture
def bob(django_user_model):
    return django_user_model.objects.create_user("bob", "bob@example.com", PASSWORD)


@pytest.fixture
def staff(django_user_model):
    return django_user_model.objects.create_user(
        "staff", "staff@example.com", PASSWORD, is_staff=True, is_superuser=True
    )


# ---- a live daphne server on the test database -------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _database_url() -> str:
    from django.db import connection

    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    auth = db["USER"] + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


class LiveServer:
    def __init__(self, url: str, process: subprocess.Popen, log_path: Path) -> None:
        self.url = url
        self.ws_url = url.replace("http://", "ws://")
        self.process = process
        self.log_path = log_path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def server_env(emulator_url: str, extra_env: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a server process on the test database, its providers the emulator."""
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": _database_url(),
        "REDIS_URL": django_settings.REDIS_URL,
        "CACHE_KEY_PREFIX": django_settings.CACHES["default"].get("KEY_PREFIX", "chimera"),
        "CHIMERA_EMULATOR_URL": emulator_url,
        "DEBUG": "True",
        "GROQ_API_KEY": "",
        "GOOGLE_API_KEY": "",
        "ANTHROPIC_API_KEY": "",
        "AI_GATEWAY_API_KEY": "",
        **(extra_env or {}),
    }


def start_live_server(emulator_url: str, extra_env: dict[str, str] | None = None) -> LiveServer:
    port = free_port()
    log_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"chimera-live-{port}.log"
    env = server_env(emulator_url, extra_env)
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "chimera.asgi:application"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"daphne exited:\n{log_path.read_text()}")
        try:
            urllib.request.urlopen(url + "/accounts/login/", timeout=1)
            return LiveServer(url, process, log_path)
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError(f"daphne did not start:\n{log_path.read_text()}")


@pytest.fixture(autouse=True)
def _live_server_helper():
    """Replaces pytest-django's helper of the same name: our `live_server` is daphne in a subprocess."""


@pytest.fixture
def live_server(transactional_db, emulator):
    """daphne serving Chimera on the test database (committed data: transactional tests)."""
    server = start_live_server(emulator.url)
    yield server
    server.process.terminate()
    try:
        server.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.process.kill()


# ---- Chromium (Debian's; Playwright cannot download a browser here) ------------------------
@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    return {**browser_type_launch_args, "executable_path": "/usr/bin/chromium", "args": CHROMIUM_ARGS}


@pytest.fixture
def logged_in_page(page, live_server, alice):
    """Alice, signed in through the real login form."""
    page.goto(live_server.url + "/accounts/login/")
    page.fill('[data-testid="username"]', "alice")
    page.fill('[data-testid="password"]', PASSWORD)
    page.click('[data-testid="login-button"]')
    page.wait_for_url(live_server.url + "/")
    return page
