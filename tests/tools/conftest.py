"""Fixtures borrowed from neighbours: the knowledge corpus (searchKnowledge through the loop) and the
API's HTTP client and keys."""

from tests.api.conftest import alice_key, http  # noqa: F401  (fixtures)
from tests.knowledge.conftest import bobs_copy, corpus  # noqa: F401  (fixtures)
