"""Two server processes on one database answer /metrics with the same numbers: the database's."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.api.helpers import chat
from tests.usage.test_metrics import TOKEN, assert_matches_database, samples
from usage.models import UsageMetric

pytestmark = pytest.mark.django_db(transaction=True)


def test_two_processes_scrape_the_same_totals_as_the_database(server_with, emu, http, alice_key, bob):
    from accounts.apikeys import create_api_key

    bob.tier = "pro"  # his plan includes the powerful tier; his attempts are labelled pro
    bob.save()
    bob_key = create_api_key(bob, "tests")[1]
    env = {"CHIMERA_METRICS_TOKEN": TOKEN}
    one = server_with(flags={"rateLimit": {"enabled": False}, "enableCaching": True}, env=env)
    two = server_with(env=env)
    emu.timing(provider="*", ttft_ms=1, chunk_ms=0, chunks=4)
    # Groq fails four times: the first answer's attempts and retries there are errors, and it fails over.
    emu.fault(provider="groq", kind="status", status=503, times=4)
    for n, (server, key, model) in enumerate(
        [
            (one, alice_key, "fast"),
            (two, bob_key, "balanced"),
            (one, bob_key, "powerful"),
            (two, alice_key, "fast"),
            (two, alice_key, "fast"),  # the same question again: a cache hit
        ]
    ):
        question = "The same question" if n >= 3 else f"Question {n}"
        body = {"messages": [{"role": "user", "content": question}], "config": {"model": model}}
        response, _ = chat(http, server.url, body, key, headers={"Accept": "application/json"})
        assert response.status_code == 200, response.text

    rows = list(UsageMetric.objects.all())
    assert (
        len({r.provider for r in rows}) >= 2 and any(r.error for r in rows) and any(r.cache_hit for r in rows)
    )

    texts = []
    for server in (one, two):
        response = http.get(server.url + "/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
        assert response.status_code == 200, response.text
        texts.append(response.text)
        assert list(text_string_to_metric_families(response.text))  # parses
        assert http.get(server.url + "/metrics").status_code == 401
    first, second = (samples(text) for text in texts)
    assert first == second
    assert_matches_database(first)
    assert sum(v for (name, _), v in first.items() if name == "chimera_requests_total") == len(rows)
