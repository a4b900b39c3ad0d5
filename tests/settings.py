"""Test settings: the real settings module, with a throwaway secret. Services come from the environment
(DATABASE_URL, REDIS_URL), exactly as in production; `make test` and .ci/run set them."""

import os

os.environ.setdefault("SECRET_KEY", "tests-only-not-a-secret")

# `make test` runs the suite in two processes (pytest-xdist). Each has its own test database
# (pytest-django's _gw0/_gw1 suffix) and its own Redis database, so rate-limit counters, breaker
# state, cached answers and channel-layer groups of one never meet the other's.
_worker = os.environ.get("PYTEST_XDIST_WORKER", "")
if _worker.startswith("gw") and os.environ.get("REDIS_URL"):
    _base = (
        os.environ["REDIS_URL"].rsplit("/", 1)[0]
        if "/" in os.environ["REDIS_URL"][8:]
        else os.environ["REDIS_URL"]
    )
    os.environ["REDIS_URL"] = f"{_base}/{10 + int(_worker[2:])}"

from chimera.settings import *  # noqa: E402, F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast logins in tests

# A finished exchange is indexed as knowledge in the background, after the answer is final. Tests end
# when the answer is final, so that write would race the next test's flush (a deadlock on PostgreSQL,
# also from a live server's process). Off here; the tests of that indexing turn it on and wait for it.
CHIMERA_KNOWLEDGE_INDEX_CONVERSATIONS = False
# Likewise titles (an extra provider call per new conversation): on in tests/chat/test_titles.py.
CHIMERA_AUTO_TITLES = False
# The orphan sweep is a thread in each server process; in the test process it would write to the test
# database behind the tests' backs. Live servers and the tests of the sweep turn it on (environment).
CHIMERA_SWEEP_ORPHANS = envbool("CHIMERA_SWEEP_ORPHANS", False)  # noqa: F405
# The background schedule runs only where a test asks for it (usage/schedule.py).
CHIMERA_SCHEDULER = envbool("CHIMERA_SCHEDULER", False)  # noqa: F405
