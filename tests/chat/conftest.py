import pytest
from asgiref.sync import sync_to_async
from django.db import connections


@pytest.fixture(autouse=True)
async def _close_executor_connections():
    """The ORM's async calls run in one executor thread whose connections outlive a test;
    close them so the test database can be flushed and dropped."""
    yield
    await sync_to_async(connections.close_all)()


from tests.api.conftest import alice_key  # noqa: E402, F401  (a fixture: the API's key for alice)
