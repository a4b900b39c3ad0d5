"""The runtime flags: one schema checks every save (code, admin, command), every change is audited,
and `manage.py load_flags` / `show_flags` serve deploys and on-call people."""

from __future__ import annotations

import json
import time

import pytest
from django.core.cache import cache
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from flags import runtime
from flags.models import FlagChange, RuntimeFlags
from flags.schema import FlagsInvalid
from tests.api.helpers import wait_for

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("value", "path", "says"),
    [
        ({"enableStreeming": False}, "enableStreeming", "unknown flag"),
        ({"enableStreaming": "false"}, "enableStreaming", "boolean"),
        ({"providers": {"primary": "openai"}}, "providers.primary", "not a provider"),
        ({"providers": {"disabled": ["groq", "gemini"]}}, "providers.disabled", "not a provider"),
        ({"rateLimit": {"freeLimit": 0}}, "rateLimit.freeLimit", "greater than or equal to 1"),
        ({"rateLimit": {"proBurst": 10**12}}, "rateLimit.proBurst", "less than or equal"),
        ({"rateLimit": "off"}, "rateLimit", "dictionary"),
    ],
)
def test_a_mistake_is_refused_with_its_path_and_nothing_is_stored(value, path, says):
    runtime.set_flags({"enableCaching": False})
    with pytest.raises(FlagsInvalid) as refused:
        runtime.set_flags(value)
    assert any(p == path and says in m for p, m in refused.value.errors), refused.value.errors
    assert RuntimeFlags.objects.get().value == {"enableCaching": False}
    assert FlagChange.objects.count() == 1


def test_every_change_is_recorded_with_who_before_and_after(staff):
    runtime.set_flags({"providers": {"primary": "google"}}, by=staff, source="admin")
    runtime.set_flags({"enableStreaming": False})
    last, first = FlagChange.objects.all()[:2]
    assert (first.changed_by, first.source, first.before) == (staff, "admin", {})
    assert first.after == {"providers": {"primary": "google"}}
    assert last.before == first.after and last.after["enableStreaming"] is False
    assert runtime.get_flags()["providers"]["primary"] == "google"


def test_the_admin_refuses_a_bad_value_with_a_message_and_audits_a_good_one(client, staff):
    client.force_login(staff)
    url = "/admin/flags/runtimeflags/add/"
    page = client.post(url, {"value": json.dumps({"enableStreaming": "nope"})})
    assert (
        page.status_code == 200
        and "enableStreaming: Input should be a valid boolean" in page.content.decode()
    )
    assert not RuntimeFlags.objects.exists()

    done = client.post(url, {"value": json.dumps({"enableAIGateway": False})})
    assert done.status_code == 302
    change = FlagChange.objects.get()
    assert change.changed_by == staff and change.source == "admin"
    listing = client.get("/admin/flags/flagchange/").content.decode()
    assert "enableAIGateway: null → false" in listing
    assert runtime.get_flags()["enableAIGateway"] is False


def test_load_flags_stores_a_file_and_refuses_a_bad_one(tmp_path, capsys):
    good = tmp_path / "flags.json"
    good.write_text(json.dumps({"providers": {"primary": "anthropic", "disabled": ["groq"]}}))
    call_command("load_flags", str(good))
    assert json.loads(capsys.readouterr().out.split("\nStored")[0])["providers"]["primary"] == "anthropic"
    assert FlagChange.objects.get().source == "command"

    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"rateLimit": {"freeLimit": -5}}))
    with pytest.raises(CommandError, match=r"rateLimit\.freeLimit"):
        call_command("load_flags", str(bad))
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(CommandError, match="is not JSON"):
        call_command("load_flags", str(tmp_path / "broken.json"))
    with pytest.raises(CommandError, match="cannot read"):
        call_command("load_flags", str(tmp_path / "missing.json"))
    assert runtime.get_flags()["providers"]["primary"] == "anthropic"

    call_command("show_flags")
    shown = capsys.readouterr()
    assert json.loads(shown.out)["providers"]["disabled"] == ["groq"] and "command" in shown.err


def test_what_show_flags_prints_loads_back_and_the_degraded_list_follows_the_alerts(tmp_path, capsys, alice):
    """`providers.degraded` is shown with the flags in effect (providers an open degradation alert
    took out of the routes) but never stored: loading it back changes nothing."""
    from usage import alerts
    from usage.models import Alert, AlertRule

    alerts.ensure_rules()
    Alert.objects.create(
        rule=AlertRule.objects.get(kind="provider_errors"),
        name="Provider Degradation",
        key="provider_errors:groq",
        subject="groq",
        severity="critical",
        message="groq failed",
    )
    runtime.invalidate()
    call_command("show_flags")
    shown = tmp_path / "shown.json"
    shown.write_text(capsys.readouterr().out)
    assert json.loads(shown.read_text())["providers"]["degraded"] == ["groq"]
    call_command("load_flags", str(shown))
    assert "degraded" not in RuntimeFlags.objects.get().value["providers"]
    Alert.objects.update(resolved_at=timezone.now())
    runtime.invalidate()
    assert runtime.get_flags()["providers"]["degraded"] == []


def test_the_background_check_keeps_the_copy_fresh_and_never_hides_a_change():
    """Each web process checks the flags' version in the background (chimera/asgi.py starts it), so
    turns do not wait on that read; a change made elsewhere still loads at the copy's next read."""
    runtime.set_flags({"enableCaching": True})
    loaded = runtime.get_flags()
    at = runtime._local["at"]
    runtime.start()  # idempotent: the ASGI application may have started it in this process already
    wait_for(lambda: runtime._local["at"] > at, what="the background check to confirm the copy")
    assert runtime.get_flags() is loaded  # fresh: nothing was read again on the way

    # Another process saves a change: the row and the version in the shared cache, not this copy.
    RuntimeFlags.objects.filter(pk=1).update(value={"enableCaching": False})
    try:
        cache.incr(runtime._VERSION_KEY)
    except ValueError:
        cache.set(runtime._VERSION_KEY, 1, None)
    changed = time.monotonic()
    runtime._confirm()  # the version moved: no check after the change may extend the old copy
    assert runtime._local["at"] < changed
    # So it goes stale within the TTL, and the next read loads the change.
    assert wait_for(lambda: runtime.get_flags()["enableCaching"] is False, what="the change to load")
