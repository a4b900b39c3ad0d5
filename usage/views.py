from __future__ import annotations

from asgiref.sync import async_to_sync
from django.contrib.admin.views.decorators import staff_member_required
from django.shortcuts import render
from django.views.decorators.http import require_GET

from usage import dashboard as data


@staff_member_required
@require_GET
def dashboard(request):
    raw = request.GET.get("hours", "24")
    hours = min(max(int(raw), 1), 24 * 30) if raw.isascii() and raw.isdigit() else 24
    from providers.health import provider_health

    live = request.GET.get("live") == "1"
    providers = async_to_sync(provider_health)(live=live)
    return render(
        request,
        "usage/dashboard.html",
        {**data.summary(hours=hours), "providers": data.with_error_rates(providers), "live": live},
    )
