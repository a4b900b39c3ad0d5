"""Alert rules, incidents and their notifications: Slack and PagerDuty at a local webhook receiver,
e-mail in Django's test outbox; driven by emulator faults and traffic through a live server.

Each incident notifies once when it fires and once when it resolves, whatever number of
evaluations run; a degraded provider leaves the routes and comes back by itself; a failed
notification is retried by a real Celery worker and only marked sent once the channel took it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections import defaultdict
from datetime import timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from asgiref.sync import async_to_sync
from django.urls import reverse
from django.utils import timezone

from flags import runtime as flags
from providers.events import AttemptFinished, Usage
from providers.factory import ModelFactory
from tests.api.helpers import chat, wait_for
from tests.conftest import ROOT, _database_url
from usage import alerts, notify, recording, schedule
from usage.models import Alert, AlertRule, JobRun, Notification, UsageMetric

pytestmark = pytest.mark.django_db(transaction=True)


class Receiver:
    """A local webhook receiver that records every POST; ``fail(path, n)`` answers 500 n times."""

    def __init__(self) -> None:
        self.posts: list[tuple[str, dict]] = []
        self.failures: dict[str, int] = defaultdict(int)
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with receiver.lock:
                    receiver.posts.append((self.path, body))
                    failing = receiver.failures[self.path] > 0
                    receiver.failures[self.path] -= failing
                status = 500 if failing else (202 if self.path == "/pagerduty" else 200)
                self.send_response(status)
                self.end_headers()
                self.wfile.write(b"ok" if status == 200 else b"{}")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def at(self, path: str) -> list[dict]:
        with self.lock:
            return [body for p, body in self.posts if p == path]

    def fail(self, path: str, times: int) -> None:
        self.failures[path] = times


@pytest.fixture
def receiver(settings):
    r = Receiver()
    settings.CHIMERA_ALERT_SLACK_WEBHOOK_URL = r.url + "/slack"
    settings.CHIMERA_ALERT_PAGERDUTY_URL = r.url + "/pagerduty"
    settings.CHIMERA_ALERT_PAGERDUTY_ROUTING_KEY = "R0UT1NGKEY"
    settings.CHIMERA_ALERT_EMAILS = ["oncall@example.com"]
    # Sent as the incident commits, in this process (a Celery worker is the last test's business).
    settings.CELERY_TASK_ALWAYS_EAGER = True
    yield r
    r.server.shutdown()
    r.server.server_close()


def rule(kind: str) -> AlertRule:
    alerts.ensure_rules()
    return AlertRule.objects.get(kind=kind)


def only(kind: str, **changes) -> AlertRule:
    """Every rule off but ``kind`` (with ``changes``, as staff would edit it)."""
    alerts.ensure_rules()
    AlertRule.objects.exclude(kind=kind).update(enabled=False)
    AlertRule.objects.filter(kind=kind).update(
        enabled=True, channels=["slack", "pagerduty", "email"], **changes
    )
    return rule(kind)


def traffic(http, server, key, n: int, tier: str = "fast") -> None:
    for i in range(n):
        response, parts = chat(
            http,
            server.url,
            {"messages": [{"role": "user", "content": f"question {i}"}], "tier": tier},
            key=key,
            headers={"Cache-Control": "no-store"},
        )
        assert response.status_code == 200, response.text
        assert parts[-1] == "[DONE]"


def check_fired_once(receiver, mailoutbox, name: str) -> Alert:
    """The incident is open, fired once on each channel, and stays quiet while it holds."""
    [alert] = Alert.objects.filter(name=name, resolved_at=None)
    assert alerts.evaluate() == []  # still holding: nothing new, nothing sent twice
    assert len([b for b in receiver.at("/slack") if name in b["text"]]) == 1
    [trigger] = [b for b in receiver.at("/pagerduty") if b["dedup_key"] == f"chimera-{alert.pk}"]
    assert trigger["event_action"] == "trigger" and trigger["routing_key"] == "R0UT1NGKEY"
    assert trigger["payload"]["severity"] == alert.severity and trigger["payload"]["source"] == "chimera"
    assert [m.to for m in mailoutbox if name in m.subject] == [["oncall@example.com"]]
    return alert


def check_resolved_once(receiver, mailoutbox, alert: Alert, later) -> None:
    """Once its window has passed (``later``), the incident resolves once and stays resolved."""
    alerts.evaluate(now=later)
    alert.refresh_from_db()
    assert alert.resolved_at is not None
    alerts.evaluate(now=later + timedelta(minutes=1))
    slack = [b["text"] for b in receiver.at("/slack") if alert.name in b["text"]]
    assert len(slack) == 2 and slack[1].startswith(":white_check_mark: [resolved]")
    pd = [b["event_action"] for b in receiver.at("/pagerduty") if b["dedup_key"] == f"chimera-{alert.pk}"]
    assert pd == ["trigger", "resolve"]
    assert len([m for m in mailoutbox if alert.name in m.subject]) == 2
    assert set(alert.notifications.values_list("channel", "event")) == {
        (c, e) for c in ("slack", "pagerduty", "email") for e in ("fired", "resolved")
    }
    assert not alert.notifications.filter(sent_at=None).exists()


def test_a_failing_provider_fires_the_error_rate_alert_and_leaves_the_routes_until_it_recovers(
    receiver, mailoutbox, server_with, alice_key, emu, http
):
    """The spec's error-rate (> 5 % over 5 min, critical) and provider-degradation (> 10 %) alerts,
    from real turns: Groq answers 503, the router fails over to Gemini, the usage rows say so."""
    server = server_with(flags={"rateLimit": {"enabled": False}})
    emu.fault(provider="groq", kind="status", status=503, times=100)
    traffic(http, server, alice_key, 12)
    # Five failures open its breaker; the rest of the turns go straight to Gemini.
    assert UsageMetric.objects.filter(provider="groq").exclude(error="").count() >= 5

    alerts.ensure_rules()
    AlertRule.objects.filter(kind__in=["cost", "latency_p95", "unpriced"]).update(enabled=False)
    # Judged over five attempts rather than ten (as staff may set it): the breaker stops at five.
    AlertRule.objects.filter(kind="provider_errors").update(min_requests=5)
    fired = {a.name: a for a in alerts.evaluate()}
    assert set(fired) == {"High Error Rate", "Provider Degradation"}
    assert fired["High Error Rate"].severity == fired["Provider Degradation"].severity == "critical"
    assert fired["Provider Degradation"].subject == "groq"

    # Degradation acts: Groq leaves every route (as an open breaker would), in every process.
    factory = ModelFactory()
    for tier in ("fast", "balanced"):
        route = async_to_sync(factory.route_for)(tier, flags.get_flags())
        assert route and "groq" not in {c.provider for c in route}, tier
    assert flags.get_flags()["providers"]["degraded"] == ["groq"]

    opened = [check_fired_once(receiver, mailoutbox, name) for name in fired]
    for alert in opened:
        check_resolved_once(receiver, mailoutbox, alert, timezone.now() + timedelta(minutes=6))
    # Back by itself once its failures aged out of the window.
    assert flags.get_flags()["providers"]["degraded"] == []
    assert "groq" in {c.provider for c in async_to_sync(factory.route_for)("fast", flags.get_flags())}


def test_slow_answers_and_spending_fire_the_latency_and_cost_alerts(
    receiver, mailoutbox, server_with, alice_key, emu, http
):
    """p95 latency over the rule's threshold (the spec's 5 s, edited down as staff may) and the cost
    of an hour over its threshold, from real turns against a slow emulator."""
    server = server_with(flags={"rateLimit": {"enabled": False}})
    emu.timing(provider="*", ttft_ms=150, chunk_ms=5, chunks=5)
    traffic(http, server, alice_key, 10)
    cost = sum(UsageMetric.objects.values_list("cost_usd", flat=True))
    assert cost > 0
    alerts.ensure_rules()
    AlertRule.objects.filter(kind__in=["error_rate", "provider_errors", "unpriced"]).update(enabled=False)
    AlertRule.objects.update(channels=["slack", "pagerduty", "email"])  # warnings page someone too
    AlertRule.objects.filter(kind="latency_p95").update(threshold=Decimal("100"))
    AlertRule.objects.filter(kind="cost").update(threshold=cost / 2)
    assert {a.name for a in alerts.evaluate()} == {"Slow Responses", "Cost Spike"}
    slow, spike = (check_fired_once(receiver, mailoutbox, name) for name in ("Slow Responses", "Cost Spike"))
    assert Decimal(spike.value) == cost
    for alert in (slow, spike):
        check_resolved_once(receiver, mailoutbox, alert, timezone.now() + timedelta(minutes=61))


def test_an_unpriced_model_fires_once_per_model(receiver, mailoutbox, alice):
    only("unpriced")
    for model in ("no-such-model", "no-such-model", "other-model"):
        attempt = AttemptFinished(
            provider="groq",
            model=model,
            usage=Usage(input_tokens=10, output_tokens=10),
            latency_ms=10,
            ttft_ms=5,
        )
        [row] = recording.record_attempts(
            user_id=alice.id,
            message_id=None,
            conversation_id=None,
            tier="fast",
            trace_id="t",
            priced=recording.price([attempt]),
        )
        assert row.cost_usd is None
    fired = alerts.evaluate()
    assert sorted(a.subject for a in fired) == ["groq/no-such-model", "groq/other-model"]
    assert alerts.evaluate() == []
    assert len(receiver.at("/slack")) == 2 and len(mailoutbox) == 2  # one per model
    alerts.evaluate(now=timezone.now() + timedelta(minutes=61))
    assert not Alert.objects.filter(resolved_at=None).exists()
    assert len(receiver.at("/slack")) == 4 and len(mailoutbox) == 4


def test_quiet_traffic_fires_nothing_and_a_switched_off_rule_resolves_its_incident(receiver, alice):
    UsageMetric.objects.bulk_create(
        [
            UsageMetric(
                user=alice,
                provider="groq",
                model="llama-3.1-8b-instant",
                cost_usd=Decimal("0.0001"),
                latency_ms=400,
            )
            for _ in range(20)
        ]
    )
    assert alerts.evaluate() == []
    UsageMetric.objects.bulk_create(
        [
            UsageMetric(
                user=alice, provider="groq", model="llama-3.1-8b-instant", error="503", cost_usd=Decimal(0)
            )
            for _ in range(5)
        ]
    )
    assert {a.name for a in alerts.evaluate()} == {"High Error Rate", "Provider Degradation"}
    AlertRule.objects.update(enabled=False)
    alerts.evaluate()
    assert not Alert.objects.filter(resolved_at=None).exists()
    assert all("switched off" in a.resolved_message for a in Alert.objects.all())
    assert len(receiver.at("/slack")) == 4  # two fired, two resolved


def test_staff_edit_rules_in_the_admin(client, staff):
    client.force_login(staff)
    listing = client.get(reverse("admin:usage_alertrule_changelist"))
    assert listing.status_code == 200 and "Provider Degradation" in listing.content.decode()
    r = rule("error_rate")
    form = {
        "name": r.name,
        "threshold": "0.2",
        "window_minutes": "15",
        "min_requests": "20",
        "severity": "warning",
        "channels": '["email"]',
        "enabled": "on",
    }
    response = client.post(reverse("admin:usage_alertrule_change", args=[r.pk]), form)
    assert response.status_code == 302, response.content.decode()[:2000]
    r.refresh_from_db()
    assert (r.threshold, r.window_minutes, r.min_requests, r.severity, r.channels) == (
        Decimal("0.2"),
        15,
        20,
        "warning",
        ["email"],
    )
    bad = client.post(
        reverse("admin:usage_alertrule_change", args=[r.pk]),
        {**form, "channels": '["sms"]', "threshold": "-1"},
    )
    assert bad.status_code == 200
    page = bad.content.decode()
    assert "Unknown channel" in page and "at least 0" in page


def test_the_schedule_runs_each_job_once_per_slot_whoever_runs_it(alice):
    now = timezone.now()
    assert set(schedule.run_due(now, runner="web a")) == set(schedule.JOBS)
    assert schedule.run_due(now, runner="web b") == []  # the same slots: claimed
    runs = JobRun.objects.filter(runner="web a")
    assert runs.count() == len(schedule.JOBS) and not runs.filter(finished_at=None).exists()
    assert not runs.exclude(error="").exists()
    later = now + timedelta(seconds=61)
    assert {"roll_usage", "evaluate_alerts", "retry_notifications"} <= set(
        schedule.run_due(later, runner="web b")
    )
    from chimera.celery import app

    assert {e["args"][0] for e in app.conf.beat_schedule.values()} == set(schedule.JOBS)


def test_a_failed_notification_is_not_marked_sent_and_the_schedule_sends_it(receiver, alice, settings):
    settings.CHIMERA_ALERT_RETRY_BASE_S = 0.2
    only("error_rate", min_requests=1)
    receiver.fail("/slack", 2)
    UsageMetric.objects.create(user=alice, provider="groq", model="m", error="503")
    [alert] = alerts.evaluate()
    slack = alert.notifications.get(channel="slack")
    assert slack.sent_at is None and slack.attempts == 1 and "HTTP 500" in slack.last_error
    assert alert.notifications.get(channel="pagerduty").sent_at is not None  # the others went
    wait_for(
        lambda: notify.retry_due() or Notification.objects.filter(pk=slack.pk).exclude(sent_at=None).exists(),
        timeout=30,
        interval=0.1,
        what="the retry",
    )
    wait_for(
        lambda: Notification.objects.filter(pk=slack.pk).exclude(sent_at=None).exists() or notify.retry_due(),
        timeout=30,
        interval=0.1,
        what="the second retry",
    )
    slack.refresh_from_db()
    assert slack.sent_at is not None and slack.attempts == 3 and slack.last_error == ""
    assert len(receiver.at("/slack")) == 3  # two refused, one taken: one message
    assert notify.retry_due() == 0


def test_a_failed_notification_is_retried_by_a_celery_worker(receiver, alice, settings, tmp_path):
    """A real worker on a real broker (Redis): the channel refuses twice, the task retries with its
    backoff, the third try is taken; the row says so."""
    from chimera.celery import app

    broker = "redis://127.0.0.1:6379/5"
    queue = f"alerts-test-{os.getpid()}"
    settings.CELERY_TASK_ALWAYS_EAGER = False
    saved = {k: app.conf[k] for k in ("broker_url", "task_always_eager", "task_default_queue")}
    app.conf.update(broker_url=broker, task_always_eager=False, task_default_queue=queue)
    log = tmp_path / "worker.log"
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", "/tmp"),
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": _database_url(),
        "REDIS_URL": broker,
        "CHIMERA_ALERT_SLACK_WEBHOOK_URL": receiver.url + "/slack",
        "CHIMERA_ALERT_RETRY_BASE_S": "0.2",
        "DEBUG": "True",
    }
    with open(log, "wb") as out:
        worker = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "chimera", "worker", "--pool=solo", "-Q", queue,
             "--without-gossip", "--without-mingle", "--without-heartbeat", "--loglevel=INFO"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        only("error_rate", min_requests=1)
        AlertRule.objects.filter(kind="error_rate").update(channels=["slack"])
        settings.CHIMERA_ALERT_PAGERDUTY_ROUTING_KEY = ""
        settings.CHIMERA_ALERT_EMAILS = []
        receiver.fail("/slack", 2)
        UsageMetric.objects.create(user=alice, provider="groq", model="m", error="503")
        [alert] = alerts.evaluate()  # queued for the worker as the incident commits
        note = alert.notifications.get()
        sent = wait_for(
            lambda: Notification.objects.filter(pk=note.pk).exclude(sent_at=None).first(),
            timeout=60,
            interval=0.2,
            what=f"the worker sending it:\n{Path(log).read_text(errors='replace')[-3000:]}",
        )
        assert sent.attempts == 3 and len(receiver.at("/slack")) == 3
        assert "Retry in" in Path(log).read_text(errors="replace")  # Celery's own retry, twice
    finally:
        worker.terminate()
        worker.wait(timeout=20)
        app.conf.update(saved)


def test_staff_resolve_an_incident_by_hand_and_the_provider_is_back(receiver, client, staff, alice):
    only("provider_errors", min_requests=1)
    UsageMetric.objects.create(user=alice, provider="groq", model="m", error="503", cost_usd=Decimal(0))
    [alert] = alerts.evaluate()
    assert flags.get_flags()["providers"]["degraded"] == ["groq"]
    client.force_login(staff)
    response = client.post(
        reverse("admin:usage_alert_changelist"),
        {"action": "resolve_now", "_selected_action": [str(alert.pk)]},
    )
    assert response.status_code == 302
    alert.refresh_from_db()
    assert alert.resolved_at is not None and "resolved by staff" in alert.resolved_message
    assert flags.get_flags()["providers"]["degraded"] == []
    assert [b["text"].split()[0] for b in receiver.at("/slack")] == [
        ":rotating_light:",
        ":white_check_mark:",
    ]
