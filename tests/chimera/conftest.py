"""Fixtures the site tests share with the API tests."""

from tests.api.conftest import alice_key  # noqa: F401  (a fixture)
