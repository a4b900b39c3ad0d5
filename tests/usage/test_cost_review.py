"""Cost review in the admin: filters, the filtered rows' totals, their CSV, cost per person and per
conversation with links between them and the rows; staff only."""

from __future__ import annotations

import asyncio
import csv
import io
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from asgiref.sync import SyncToAsync, sync_to_async
from django.db import connections
from django.db.models import Count, Q, Sum
from django.urls import reverse
from django.utils import timezone

from chat.models import Conversation
from tests.conftest import PASSWORD
from tests.usage.test_dashboard_charts import add_rows
from usage import admin as usage_admin
from usage.models import UsageMetric

pytestmark = pytest.mark.django_db

CHANGELIST = "admin:usage_usagemetric_changelist"


@pytest.fixture
def bob_pro(bob):
    bob.tier = "pro"
    bob.save(update_fields=["tier"])
    return bob


@pytest.fixture
def usage(alice, bob_pro):
    """Two people, three conversations, two providers, errors and cache hits, over two days."""
    now = timezone.now()
    trip = Conversation.objects.create(user=alice, title="Trip to Lisbon")
    poem = Conversation.objects.create(user=alice, title="A poem")
    plan = Conversation.objects.create(user=bob_pro, title="Business plan")
    add_rows(alice, 3, now - timedelta(hours=1), conversation_id=trip.id, cost_usd=Decimal("0.000217"))
    add_rows(alice, 2, now - timedelta(hours=30), conversation_id=poem.id, cost_usd=Decimal("0.001234"),
             provider="google", model="gemini-2.5-flash")  # fmt: skip
    add_rows(
        alice, 1, now - timedelta(hours=2), conversation_id=trip.id, error="503 from groq", cost_usd=None
    )
    add_rows(alice, 2, now - timedelta(hours=2), conversation_id=poem.id, cache_hit=True,
             cost_usd=Decimal("0"), saved_cost_usd=Decimal("0.000300"))  # fmt: skip
    add_rows(bob_pro, 4, now - timedelta(hours=3), conversation_id=plan.id, user_tier="pro",
             cost_usd=Decimal("0.010001"), provider="anthropic", model="claude-haiku-4-5")  # fmt: skip
    add_rows(
        bob_pro, 1, now - timedelta(hours=3), user_tier="pro", cost_usd=Decimal("0.000005")
    )  # no conversation
    return {"trip": trip, "poem": poem, "plan": plan}


def totals_on(page: str) -> dict[str, str]:
    return dict(re.findall(r'data-total="(\w+)">([^<]*)<', page))


def expected_totals(rows) -> dict[str, str]:
    agg = rows.aggregate(
        n=Count("id"), i=Sum("input_tokens"), o=Sum("output_tokens"), c=Sum("cost_usd"), s=Sum("saved_cost_usd"),
        e=Count("id", filter=~Q(error="")),
    )  # fmt: skip
    six = Decimal("0.000001")
    return {
        "requests": str(agg["n"]),
        "tokens": str((agg["i"] or 0) + (agg["o"] or 0)),
        "cost_usd": str(Decimal(agg["c"] or 0).quantize(six)),
        "saved_cost_usd": str(Decimal(agg["s"] or 0).quantize(six)),
        "errors": str(agg["e"]),
    }


def read_export(response) -> list[dict]:
    assert response.status_code == 200 and response.streaming
    assert response["Content-Type"].startswith("text/csv")
    body = b"".join(response.streaming_content).decode()
    return list(csv.DictReader(io.StringIO(body)))


@pytest.mark.parametrize(
    ("query", "filters"),
    [
        ("", {}),
        ("provider__exact=groq", {"provider": "groq"}),
        ("has_error=yes", {"error__gt": ""}),
        ("has_error=no&cache_hit__exact=0", {"error": "", "cache_hit": False}),
        ("cache_hit__exact=1", {"cache_hit": True}),
        ("user_tier=pro", {"user_tier": "pro"}),
        ("model=gemini-2.5-flash", {"model": "gemini-2.5-flash"}),
        ("created_at__gte={day}", {"created_at__gte": "{day}"}),
    ],
)
def test_the_totals_above_the_list_are_the_sums_of_the_filtered_rows(client, staff, usage, query, filters):
    day = (timezone.now() - timedelta(hours=12)).astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S%z")
    query = query.replace("{day}", day.replace("+", "%2B"))
    filters = {k: (v.replace("{day}", day) if isinstance(v, str) else v) for k, v in filters.items()}
    client.force_login(staff)
    response = client.get(reverse(CHANGELIST) + "?" + query)
    assert response.status_code == 200, response.get("Location")
    rows = UsageMetric.objects.filter(**filters)
    assert response.context_data["cl"].result_count == rows.count() > 0
    shown = totals_on(response.content.decode())
    assert {
        k: shown[k] for k in ("requests", "tokens", "cost_usd", "saved_cost_usd", "errors")
    } == expected_totals(rows)
    assert Decimal(shown["cost_usd"]) == sum((r.cost_usd or Decimal(0) for r in rows), Decimal(0))


def test_the_user_filter_and_the_conversation_filter(client, staff, alice, usage):
    client.force_login(staff)
    page = client.get(reverse(CHANGELIST) + f"?user__id__exact={alice.id}").content.decode()
    assert totals_on(page)["requests"] == str(UsageMetric.objects.filter(user=alice).count())
    trip = usage["trip"]
    response = client.get(reverse(CHANGELIST) + f"?conversation_id__exact={trip.id}")
    assert totals_on(response.content.decode())["cost_usd"] == "0.000651"  # 3 x 0.000217; the error unpriced
    assert response.context_data["cl"].result_count == 4


def test_the_csv_export_has_exactly_the_filtered_rows_streamed_in_pages(client, staff, usage, monkeypatch):
    client.force_login(staff)
    # Pages of three rows, and rows sharing one created_at: the keyset paging must neither skip nor repeat.
    monkeypatch.setattr(usage_admin, "EXPORT_BATCH", 3)
    changelist = client.get(reverse(CHANGELIST) + "?provider__exact=groq&has_error=no").content.decode()
    link = re.search(r'href="([^"]+)" data-testid="export-csv"', changelist).group(1).replace("&amp;", "&")
    assert "provider__exact=groq" in link and "has_error=no" in link  # the link keeps the filters
    rows = read_export(client.get(link))
    wanted = UsageMetric.objects.filter(provider="groq", error="")
    assert sorted(r["id"] for r in rows) == sorted(str(pk) for pk in wanted.values_list("id", flat=True))
    assert len(rows) == len({r["id"] for r in rows}) == 6
    assert sum(Decimal(r["cost_usd"] or 0) for r in rows) == Decimal("0.000656")  # 3 x 0.000217 + 0.000005
    for r in rows:
        stored = UsageMetric.objects.get(pk=r["id"])
        assert r["cost_usd"] == str(stored.cost_usd) and r["user__username"] == stored.user.username
        assert datetime.fromisoformat(r["created_at"]) == stored.created_at and r["created_at"].endswith("Z")
    everything = read_export(client.get(reverse("admin:usage_usagemetric_export")))
    assert len(everything) == UsageMetric.objects.count()


def test_an_export_with_a_filter_that_makes_no_sense_answers_400(client, staff, usage):
    client.force_login(staff)
    response = client.get(reverse("admin:usage_usagemetric_export") + "?created_at__gte=not-a-date")
    assert response.status_code == 400 and b"not valid" in response.content


def test_cost_by_person_links_to_their_rows_and_back(client, staff, alice, bob_pro, usage):
    client.force_login(staff)
    response = client.get(reverse("admin:usage_usagemetric_by_user"))
    assert response.status_code == 200
    lines = response.context_data["lines"]
    assert [line["subject"] for line in lines] == ["bob", "alice"]  # the costliest first
    for line, person in zip(lines, (bob_pro, alice), strict=True):
        mine = UsageMetric.objects.filter(user=person)
        assert line["cost_usd"] == Decimal(mine.aggregate(c=Sum("cost_usd"))["c"]).quantize(
            Decimal("0.000001")
        )
        assert line["requests"] == mine.count()
        assert line["subject_url"] == reverse("admin:accounts_user_change", args=[person.id])
        rows_page = client.get(line["rows_url"])
        assert rows_page.status_code == 200 and rows_page.context_data["cl"].result_count == mine.count()
        assert totals_on(rows_page.content.decode())["cost_usd"] == str(line["cost_usd"])
    # From a person to the cost of each of their conversations.
    alices = client.get(lines[1]["conversations_url"]).context_data["lines"]
    assert {line["subject"]: line["cost_usd"] for line in alices} == {
        str(usage["poem"].id): Decimal("0.002468"),
        str(usage["trip"].id): Decimal("0.000651"),
    }
    assert {line["person"] for line in alices} == {"alice"}
    # The filters in force are kept: cost per person of groq only, and its links keep it.
    only_groq = client.get(reverse("admin:usage_usagemetric_by_user") + "?provider__exact=groq").context_data
    assert {line["subject"]: line["requests"] for line in only_groq["lines"]} == {"alice": 6, "bob": 1}
    assert all("provider__exact=groq" in line["rows_url"] for line in only_groq["lines"])


def test_cost_by_conversation_links_to_its_rows_and_the_conversation(client, staff, usage):
    client.force_login(staff)
    response = client.get(reverse("admin:usage_usagemetric_by_conversation"))
    assert response.status_code == 200
    lines = {line["subject"]: line for line in response.context_data["lines"]}
    plan, trip = usage["plan"], usage["trip"]
    assert next(iter(lines)) == str(plan.id) and lines[str(plan.id)]["title"] == "Business plan"
    assert lines[str(plan.id)]["cost_usd"] == Decimal("0.040004")
    assert lines["(no conversation)"]["requests"] == 1  # the row without a conversation is counted too
    line = lines[str(trip.id)]
    assert line["subject_url"] == reverse("admin:chat_conversation_change", args=[trip.id])
    assert client.get(line["subject_url"]).status_code == 200
    rows_page = client.get(line["rows_url"])
    assert rows_page.context_data["cl"].result_count == 4
    assert client.get(lines["(no conversation)"]["rows_url"]).context_data["cl"].result_count == 1
    # From a conversation to its person's other conversations.
    assert line["person"] == "alice"
    theirs = client.get(line["conversations_url"]).context_data["lines"]
    assert {t["subject"] for t in theirs} == {str(trip.id), str(usage["poem"].id)}
    page = response.content.decode()
    assert "Trip to Lisbon" in page and 'data-testid="rows-link"' in page


def test_a_usage_row_links_to_its_person_and_its_conversation(client, staff, alice, usage):
    client.force_login(staff)
    trip = usage["trip"]
    page = client.get(reverse(CHANGELIST) + f"?conversation_id__exact={trip.id}").content.decode()
    assert reverse("admin:chat_conversation_change", args=[trip.id]) in page
    assert reverse("admin:accounts_user_change", args=[alice.id]) in page
    assert f"?user__id__exact={alice.id}" in page and f"?conversation_id__exact={trip.id}" in page
    row = UsageMetric.objects.filter(conversation_id=trip.id).first()
    detail = client.get(reverse("admin:usage_usagemetric_change", args=[row.pk])).content.decode()
    assert reverse("admin:chat_conversation_change", args=[trip.id]) in detail


def test_the_cost_review_is_for_staff_only(client, django_user_model, alice, usage):
    urls = [
        reverse(CHANGELIST),
        reverse("admin:usage_usagemetric_export"),
        reverse("admin:usage_usagemetric_by_user"),
        reverse("admin:usage_usagemetric_by_conversation"),
    ]
    for url in urls:
        assert client.get(url).status_code == 302  # anonymous: to the admin's login
    client.force_login(alice)
    for url in urls:
        response = client.get(url)
        assert response.status_code == 302 and "/admin/login/" in response["Location"]
    # Staff without the permission to view usage rows: refused.
    clerk = django_user_model.objects.create_user("clerk", "clerk@example.com", PASSWORD, is_staff=True)
    client.force_login(clerk)
    for url in urls:
        assert client.get(url).status_code == 403


@pytest.fixture
async def _close_executor_connections():
    """The request and the export's pages ran the ORM in executor threads whose connections outlive
    the test: close them so the test database can be flushed and dropped."""
    yield
    await sync_to_async(connections.close_all)()
    for executor in list(SyncToAsync.context_to_thread_executor.values()):
        await asyncio.wrap_future(executor.submit(connections.close_all))


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("_close_executor_connections")
async def test_under_asgi_the_export_is_streamed_page_by_page(async_client, staff, usage, monkeypatch):
    """Daphne serves Chimera: there the rows come from an async iterator, a page per query."""
    monkeypatch.setattr(usage_admin, "EXPORT_BATCH", 4)
    await async_client.aforce_login(staff)
    response = await async_client.get(reverse("admin:usage_usagemetric_export") + "?user_tier=pro")
    assert response.status_code == 200 and response.is_async
    chunks = [chunk async for chunk in response.streaming_content]
    assert len(chunks) == 1 + 5  # the header, then bob's five rows
    rows = list(csv.DictReader(io.StringIO(b"".join(chunks).decode())))
    pro = UsageMetric.objects.filter(user_tier="pro").values_list("id", flat=True)
    assert {r["id"] for r in rows} == {str(pk) for pk in await sync_to_async(list)(pro)}
