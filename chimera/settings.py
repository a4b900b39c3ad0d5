"""Chimera settings: everything from the environment, with safe embedded defaults.

With nothing set, Chimera runs embedded: a SQLite file, in-memory channel layer
and cache, Celery tasks in-process, and every tier routed to the local model.
``DATABASE_URL``, ``REDIS_URL`` and provider keys switch on the real services.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def envstr(name: str, default: str = "") -> str:
    """A string setting; ``NAME_FILE`` (a path) wins, so secrets can come from files."""
    path = os.environ.get(f"{name}_FILE")
    if path:
        return Path(path).read_text().strip()
    return os.environ.get(name, default)


def envbool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    if value in ("True", "true", "1"):
        return True
    if value in ("False", "false", "0"):
        return False
    raise ImproperlyConfigured(f"{name} must be True or False, not {value!r}")


def envint(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a whole number, not {value!r}") from None


DEBUG = envbool("DEBUG", False)
SECRET_KEY = envstr("SECRET_KEY")
_local_secret = BASE_DIR / "var" / "secret-key"  # written by `make run` for this checkout only
if not SECRET_KEY and _local_secret.exists():
    SECRET_KEY = _local_secret.read_text().strip()
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY is required when DEBUG is off (make run sets DEBUG=True).")
    SECRET_KEY = "chimera-insecure-development-key"

ALLOWED_HOSTS = [
    h.strip() for h in envstr("ALLOWED_HOSTS", "127.0.0.1,localhost,[::1]").split(",") if h.strip()
]
CSRF_TRUSTED_ORIGINS = [o.strip() for o in envstr("CSRF_TRUSTED_ORIGINS").split(",") if o.strip()]

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "django_htmx",
    "ninja",  # /api/docs serves Swagger UI from ninja's static files, not a CDN
    "chimera",  # the site: the serve command
    "accounts",
    "flags",
    "providers",
    "usage",
    "chat",
    "tools",
    "knowledge",
]

# Django's security, session, common, CSRF, authentication, messages and clickjacking middleware, in
# Django's order, with their hooks run on the event loop rather than one thread hop each (chimera/middleware.py).
MIDDLEWARE = [
    "chimera.middleware.Security",
    "chimera.middleware.Sessions",
    "chimera.middleware.Common",
    "chimera.middleware.Csrf",
    "chimera.middleware.Authentication",
    "chimera.middleware.Messages",
    "chimera.middleware.FrameOptions",
    "django_htmx.middleware.HtmxMiddleware",
    "chimera.security.content_security_policy",
]

# Django's deploy checks for these look for its own dotted paths; chimera.middleware checks the classes.
_MIDDLEWARE_PATH_CHECKS = ["security.W001", "security.W002", "security.W003"]

ROOT_URLCONF = "chimera.urls"
ASGI_APPLICATION = "chimera.asgi.application"
AUTH_USER_MODEL = "accounts.User"
LOGIN_URL = "login"
# Passwords: Django's four validators (at least 10 characters, not common, not all digits, not
# like the username or email).
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# Anyone may create an account (False: only staff create them, in the admin).
CHIMERA_SIGNUP_OPEN = envbool("CHIMERA_SIGNUP_OPEN", True)
# POSTs to login, signup and the admin login per client address (and per username tried).
CHIMERA_LOGIN_RATE = envstr("CHIMERA_LOGIN_RATE", "10/5m")
# Behind a proxy every client has the proxy's address: name the header the proxy sets to the
# client's own (e.g. HTTP_X_REAL_IP). Only a header the proxy overwrites, or clients can pick theirs.
RATELIMIT_IP_META_KEY = envstr("CHIMERA_CLIENT_IP_HEADER") or None
LOGIN_REDIRECT_URL = "chat:index"
LOGOUT_REDIRECT_URL = "login"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "chimera.context_processors.chimera",
            ],
        },
    },
]

# --- database -------------------------------------------------------------------
DATABASE_URL = envstr("DATABASE_URL")
if DATABASE_URL:
    import dj_database_url

    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=envint("DB_CONN_MAX_AGE", 0))}
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": envstr("SQLITE_PATH", str(BASE_DIR / "var" / "chimera.sqlite3")),
            # IMMEDIATE: a transaction takes the write lock when it begins, so two writers queue
            # (up to `timeout` s) instead of one failing "database is locked" when it upgrades.
            "OPTIONS": {
                "timeout": 20,
                "init_command": "PRAGMA journal_mode=WAL;",
                "transaction_mode": "IMMEDIATE",
            },
            # A file, not memory, so a live test server process can share the test database.
            # One per test process, so test runs side by side do not share (or delete) each other's.
            "TEST": {"NAME": str(BASE_DIR / "var" / f"test-{os.getpid()}.sqlite3")},
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
# The API key lookup is prepared once per connection on PostgreSQL (chimera/rows.py); False for a
# pooler in transaction mode that cannot keep prepared statements (PgBouncer before 1.21). psycopg
# prepares nothing while its threshold is None (Django's default): with it set this high, only the
# statements that ask (chimera.rows.cursor) are prepared; Django's own cursors bind on the client and
# never are.
CHIMERA_DB_PREPARED = envbool("DB_PREPARED_STATEMENTS", True)
if CHIMERA_DB_PREPARED and DATABASES["default"]["ENGINE"].endswith("postgresql"):
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault("prepare_threshold", 2**31 - 1)

# --- redis: channel layer, cache, limits, replay buffers, breaker ----------------
REDIS_URL = envstr("REDIS_URL")
# Seconds to connect to / hear from Redis before carrying on without it.
REDIS_TIMEOUT_S = envint("CHIMERA_REDIS_TIMEOUT_MS", 1000) / 1000
# What the rate limit does while Redis is unreachable: "open" (let messages through) or "closed"
# (refuse them with a 503 until Redis is back).
CHIMERA_RATE_LIMIT_WHEN_DOWN = envstr("CHIMERA_RATE_LIMIT_WHEN_DOWN", "open")
if CHIMERA_RATE_LIMIT_WHEN_DOWN not in ("open", "closed"):
    raise ImproperlyConfigured(
        f"CHIMERA_RATE_LIMIT_WHEN_DOWN must be open or closed, not {CHIMERA_RATE_LIMIT_WHEN_DOWN!r}"
    )
if REDIS_URL:
    # Every consumer blocks in BZPOPMIN for up to 5 s; redis-py 8's default 5 s socket timeout races it
    # and kills idle sockets with 1011, so give reads room beyond the blocking timeout.
    # The layer rides out a Redis outage (chat/layer.py).
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "chat.layer.ResilientRedisChannelLayer",
            "CONFIG": {
                "hosts": [
                    {"address": REDIS_URL, "socket_timeout": 30, "socket_connect_timeout": REDIS_TIMEOUT_S}
                ]
            },
        }
    }
    # Short timeouts: a Redis that is down or hangs costs a turn at most a second or so per use,
    # and every use has a way on without it (README, "When Redis is down").
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": envstr("CACHE_KEY_PREFIX", "chimera"),
            "OPTIONS": {"socket_connect_timeout": REDIS_TIMEOUT_S, "socket_timeout": REDIS_TIMEOUT_S},
        }
    }
    # django-ratelimit warns that Django's own RedisCache is untested with it; it works.
    SILENCED_SYSTEM_CHECKS = ["django_ratelimit.W001", *_MIDDLEWARE_PATH_CHECKS]
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "chimera"}}
    # One process embedded: local memory is the shared memory.
    SILENCED_SYSTEM_CHECKS = ["django_ratelimit.E003", "django_ratelimit.W001", *_MIDDLEWARE_PATH_CHECKS]

# --- celery ---------------------------------------------------------------------
CELERY_BROKER_URL = REDIS_URL or "memory://"
CELERY_RESULT_BACKEND = None
CELERY_TASK_ALWAYS_EAGER = not REDIS_URL
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TIMEZONE = "UTC"
# The beat's schedule is usage/schedule.py's table of jobs (chimera/celery.py), which each web process's
# scheduler thread also runs (CHIMERA_SCHEDULER), in every layout; each job's slot runs once.
CHIMERA_SCHEDULER = envbool("CHIMERA_SCHEDULER", True)
CHIMERA_SCHEDULER_TICK_S = float(envstr("CHIMERA_SCHEDULER_TICK_S", "5"))

# --- providers ------------------------------------------------------------------
CHIMERA_EMULATOR_URL = envstr("CHIMERA_EMULATOR_URL").rstrip("/")
CHIMERA_LOCAL_MODEL_URL = envstr("CHIMERA_LOCAL_MODEL_URL", "http://127.0.0.1:8766/v1").rstrip("/")
GROQ_API_KEY = envstr("GROQ_API_KEY")
GOOGLE_API_KEY = envstr("GOOGLE_API_KEY") or envstr("GEMINI_API_KEY")
ANTHROPIC_API_KEY = envstr("ANTHROPIC_API_KEY")
AI_GATEWAY_API_KEY = envstr("AI_GATEWAY_API_KEY")
GROQ_BASE_URL = envstr("GROQ_BASE_URL")
GEMINI_BASE_URL = envstr("GEMINI_BASE_URL")
ANTHROPIC_BASE_URL = envstr("ANTHROPIC_BASE_URL")
AI_GATEWAY_BASE_URL = envstr("AI_GATEWAY_BASE_URL")
_catalog_file = envstr("CHIMERA_CATALOG_FILE")
CHIMERA_CATALOG: dict = json.loads(Path(_catalog_file).read_text()) if _catalog_file else {}

# --- chat -----------------------------------------------------------------------
CHIMERA_MAX_MESSAGE_CHARS = envint("CHIMERA_MAX_MESSAGE_CHARS", 32_000)
# Threads (each with one persistent connection) doing the turns' database work; see chat/db.py.
CHIMERA_DB_THREADS = envint("CHIMERA_DB_THREADS", 4)
# How often a streaming answer is written to the database (ms); writes stay off the token path.
CHIMERA_CHECKPOINT_MS = envint("CHIMERA_CHECKPOINT_MS", 1000)
# Every process touches the answers it is writing this often (seconds); an answer untouched for three
# beats belongs to a process that died, and the orphan sweep (chat/sweep.py), which every web process
# runs every half beat, settles it.
try:
    CHIMERA_HEARTBEAT_S = float(envstr("CHIMERA_HEARTBEAT_S", "10"))
except ValueError:
    raise ImproperlyConfigured("CHIMERA_HEARTBEAT_S must be a number of seconds") from None
if not 0.1 <= CHIMERA_HEARTBEAT_S <= 600:
    raise ImproperlyConfigured("CHIMERA_HEARTBEAT_S must be between 0.1 and 600 seconds")
CHIMERA_SWEEP_ORPHANS = envbool("CHIMERA_SWEEP_ORPHANS", True)
# Whose cached answers a prompt may get: "user" (default: only the asker's own, so nobody learns what
# someone else asked) or "global" (every user's: more hits, but a hit tells that someone asked it).
CHIMERA_CACHE_SCOPE = envstr("CHIMERA_CACHE_SCOPE", "user")
if CHIMERA_CACHE_SCOPE not in ("user", "global"):
    raise ImproperlyConfigured(f"CHIMERA_CACHE_SCOPE must be user or global, not {CHIMERA_CACHE_SCOPE!r}")
# Messages per plan per quota window (the spec's freeLimit / proLimit; runtime flags can change them).
CHIMERA_RATE_LIMIT_FREE = envint("CHIMERA_RATE_LIMIT_FREE", 100)
CHIMERA_RATE_LIMIT_PRO = envint("CHIMERA_RATE_LIMIT_PRO", 1000)
CHIMERA_RATE_LIMIT_WINDOW_S = envint("CHIMERA_RATE_LIMIT_WINDOW_S", 86400)  # the quota's window: a day
# And a burst window: at most this many messages per CHIMERA_RATE_LIMIT_BURST_S (a minute) by plan.
CHIMERA_RATE_LIMIT_BURST_FREE = envint("CHIMERA_RATE_LIMIT_BURST_FREE", 10)
CHIMERA_RATE_LIMIT_BURST_PRO = envint("CHIMERA_RATE_LIMIT_BURST_PRO", 60)
CHIMERA_RATE_LIMIT_BURST_S = envint("CHIMERA_RATE_LIMIT_BURST_S", 60)
# The model tiers each plan (users.tier) may pick; anything else is refused with a 403.
CHIMERA_TIER_MODELS: dict = json.loads(
    envstr(
        "CHIMERA_TIER_MODELS",
        '{"free": ["fast", "balanced"], "pro": ["fast", "balanced", "powerful", "reasoning"]}',
    )
)
CHIMERA_DEMO_USER = envstr("CHIMERA_DEMO_USER", "demo")

# --- tools (the spec's ChimeraTools) ---------------------------------------------
# Provider calls one answer may make while it uses tools (each call is one step, metered).
CHIMERA_TOOL_MAX_STEPS = envint("CHIMERA_TOOL_MAX_STEPS", 5)
# Which user tiers may use which tool, e.g. {"analyzeVideo": ["pro"]}; unset tools keep their defaults.
CHIMERA_TOOL_TIERS: dict = json.loads(envstr("CHIMERA_TOOL_TIERS", "{}"))
# queryDatabase: how long one query may run, how many rows come back, how long a value may be.
CHIMERA_SQL_TIMEOUT_MS = envint("CHIMERA_SQL_TIMEOUT_MS", 3000)
CHIMERA_SQL_MAX_ROWS = envint("CHIMERA_SQL_MAX_ROWS", 200)
CHIMERA_SQL_MAX_CELL_CHARS = envint("CHIMERA_SQL_MAX_CELL_CHARS", 1000)
CHIMERA_SQL_LOCK_TIMEOUT_MS = envint("CHIMERA_SQL_LOCK_TIMEOUT_MS", 1000)
CHIMERA_SQL_IDLE_TIMEOUT_MS = envint("CHIMERA_SQL_IDLE_TIMEOUT_MS", 10_000)

# --- sandbox (executeCode) -----------------------------------------------------
# Limits of one run of the model's Python (tools/sandbox.py: bubblewrap, no network, nothing of
# the server visible). CPU seconds and wall-clock seconds; address space (MB); processes and
# threads; bytes kept of stdout and of stderr (past that the run is stopped); the size (MB) of
# its throwaway working directory; and runs at once per server process (more wait their turn).
CHIMERA_SANDBOX_CPU_S = envint("CHIMERA_SANDBOX_CPU_S", 5)
CHIMERA_SANDBOX_WALL_S = envint("CHIMERA_SANDBOX_WALL_S", 10)
CHIMERA_SANDBOX_MEMORY_MB = envint("CHIMERA_SANDBOX_MEMORY_MB", 256)
CHIMERA_SANDBOX_MAX_PROCS = envint("CHIMERA_SANDBOX_MAX_PROCS", 32)
CHIMERA_SANDBOX_OUTPUT_BYTES = envint("CHIMERA_SANDBOX_OUTPUT_BYTES", 65536)
CHIMERA_SANDBOX_DISK_MB = envint("CHIMERA_SANDBOX_DISK_MB", 16)
CHIMERA_SANDBOX_PARALLEL = envint("CHIMERA_SANDBOX_PARALLEL", 4)
# bubblewrap: a path, or a name looked up in /usr/bin, /bin, /usr/local/bin. Without it no code runs.
CHIMERA_SANDBOX_BWRAP = envstr("CHIMERA_SANDBOX_BWRAP", "bwrap")

# --- knowledge (documents, conversations, retrieval) -------------------------------
# Largest file a person may add, in bytes, and the most text (characters) one file may hold:
# its passages are embedded during the upload request (about 10 s per 200,000 characters on 2 cores).
CHIMERA_KNOWLEDGE_MAX_UPLOAD_BYTES = envint("CHIMERA_KNOWLEDGE_MAX_UPLOAD_BYTES", 5 * 1024 * 1024)
CHIMERA_KNOWLEDGE_MAX_CHARS = envint("CHIMERA_KNOWLEDGE_MAX_CHARS", 200_000)
# Passages less similar than this (cosine, all-MiniLM-L6-v2) are not found by meaning alone.
CHIMERA_KNOWLEDGE_MIN_SIMILARITY = float(envstr("CHIMERA_KNOWLEDGE_MIN_SIMILARITY", "0.25"))
# Threads doing knowledge work for async callers (searches, indexing messages), and the embedding
# model's own threads per run: 1 by default, so a long upload never takes both cores of a small
# server from the streams (2 is ~1.8x faster per passage on an idle 2-core machine, slower on a busy one).
CHIMERA_KNOWLEDGE_THREADS = envint("CHIMERA_KNOWLEDGE_THREADS", 2)
CHIMERA_EMBEDDING_THREADS = envint("CHIMERA_EMBEDDING_THREADS", 1)
# Users whose chunk vectors each process keeps in memory (1.5 KB per chunk) between searches.
CHIMERA_KNOWLEDGE_CACHED_USERS = envint("CHIMERA_KNOWLEDGE_CACHED_USERS", 32)
# Every finished exchange is indexed as knowledge in the background (one embedding run per message).
CHIMERA_KNOWLEDGE_INDEX_CONVERSATIONS = envbool("CHIMERA_KNOWLEDGE_INDEX_CONVERSATIONS", True)
# After a conversation's first answer, ask the fast tier for a short title (chat/titles.py).
CHIMERA_AUTO_TITLES = envbool("CHIMERA_AUTO_TITLES", True)

# --- alerts (the spec's thresholds) ----------------------------------------------
CHIMERA_ALERT_ERROR_RATE = float(envstr("CHIMERA_ALERT_ERROR_RATE", "0.05"))
CHIMERA_ALERT_LATENCY_P95_MS = envint("CHIMERA_ALERT_LATENCY_P95_MS", 5000)
CHIMERA_ALERT_COST_PER_HOUR = envstr("CHIMERA_ALERT_COST_PER_HOUR", "10")
# Where alerts go (each rule lists its channels; a channel without its setting is skipped).
# CHIMERA_ALERT_WEBHOOK_URL is the older name of the Slack webhook.
CHIMERA_ALERT_SLACK_WEBHOOK_URL = envstr("CHIMERA_ALERT_SLACK_WEBHOOK_URL") or envstr(
    "CHIMERA_ALERT_WEBHOOK_URL"
)
CHIMERA_ALERT_PAGERDUTY_ROUTING_KEY = envstr("CHIMERA_ALERT_PAGERDUTY_ROUTING_KEY")
CHIMERA_ALERT_PAGERDUTY_URL = envstr("CHIMERA_ALERT_PAGERDUTY_URL", "https://events.pagerduty.com/v2/enqueue")
CHIMERA_ALERT_EMAILS = [a.strip() for a in envstr("CHIMERA_ALERT_EMAILS").split(",") if a.strip()]
# A failed notification is tried again after this many seconds, doubling each time (at most 10 minutes).
CHIMERA_ALERT_RETRY_BASE_S = float(envstr("CHIMERA_ALERT_RETRY_BASE_S", "10"))
DEFAULT_FROM_EMAIL = envstr("DEFAULT_FROM_EMAIL", "chimera@localhost")
EMAIL_BACKEND = envstr("EMAIL_BACKEND", "django.core.mail.backends.smtp.EmailBackend")
EMAIL_HOST = envstr("EMAIL_HOST", "localhost")
EMAIL_PORT = envint("EMAIL_PORT", 25)
EMAIL_HOST_USER = envstr("EMAIL_HOST_USER")
EMAIL_HOST_PASSWORD = envstr("EMAIL_HOST_PASSWORD")
EMAIL_USE_TLS = envbool("EMAIL_USE_TLS", False)
EMAIL_TIMEOUT = 10
# GET /metrics (Prometheus) answers only `Authorization: Bearer <this>`; unset, it is off (404).
CHIMERA_METRICS_TOKEN = envstr("CHIMERA_METRICS_TOKEN")

# --- i18n, static ---------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = BASE_DIR / "staticfiles"
DATA_UPLOAD_MAX_MEMORY_SIZE = envint("DATA_UPLOAD_MAX_MEMORY_SIZE", 1_048_576)

SESSION_COOKIE_HTTPONLY = True
# Behind HTTPS (a TLS-terminating proxy that sets X-Forwarded-Proto): secure cookies, HSTS and a
# redirect of plain HTTP. `manage.py check --deploy` is clean with CHIMERA_HTTPS=True (README).
CHIMERA_HTTPS = envbool("CHIMERA_HTTPS", False)
SESSION_COOKIE_SECURE = envbool("SESSION_COOKIE_SECURE", CHIMERA_HTTPS)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
if CHIMERA_HTTPS:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = envbool("SECURE_SSL_REDIRECT", True)
    SECURE_HSTS_SECONDS = envint("SECURE_HSTS_SECONDS", 31_536_000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = envbool("SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
    SECURE_HSTS_PRELOAD = envbool("SECURE_HSTS_PRELOAD", True)
X_FRAME_OPTIONS = "DENY"
# The Content-Security-Policy of every response (chimera/security.py); "" sends none.
CHIMERA_CSP = envstr(
    "CHIMERA_CSP",
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: https:; "
    "media-src 'self' https:; connect-src 'self'; font-src 'self'; object-src 'none'; "
    "base-uri 'self'; form-action 'self'; frame-ancestors 'none'",
)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": envstr("LOG_LEVEL", "INFO")},
    "loggers": {
        # The SDKs' HTTP clients log request lines; never let headers (keys) through.
        "httpx2": {"level": "WARNING"},
        "httpx": {"level": "WARNING"},
        "django.channels.server": {"level": "WARNING"},
    },
}
