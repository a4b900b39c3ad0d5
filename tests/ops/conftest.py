"""The API fixtures for the operations tests."""

from tests.api.conftest import alice_key, bob_key, http, server_with  # noqa: F401  (fixtures)
