from __future__ import annotations

from django.contrib.admin.views.decorators import staff_member_required
from django.shortcuts import render
from django.views.decorators.http import require_GET

from usage import dashboard as data


@staff_member_required
@require_GET
def dashboard(request):
    hours = min(max(int(request.GET.get("hours", "24") or 24), 1), 24 * 30) if request.GET.get(
        "hours", "24").isdigit() else 24
    return render(request, "usage/dashboard.html", data.summary(hours=hours))
