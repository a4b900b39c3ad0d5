"""The API fixtures (an HTTP client, API keys) for the fuzz tests."""

from tests.api.conftest import alice_key, http  # noqa: F401  (fixtures)
