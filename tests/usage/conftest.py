"""The API fixtures (an HTTP client, API keys, servers with chosen flags) for the usage tests."""

from tests.api.conftest import alice_key, http, server_with  # noqa: F401  (fixtures)
