import os

import pytest


@pytest.fixture(scope="session", autouse=True)
def _database_before_browser(django_db_setup):
    """Create the test database before Playwright starts its event loop, then let the tests' own ORM
    calls run beside that loop. Browser tests run last (tests/conftest.py orders them), so the
    async-safety check stays on for every other test."""
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
