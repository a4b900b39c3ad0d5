from __future__ import annotations

import csv
from urllib.parse import urlencode

from asgiref.sync import async_to_sync
from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from usage import dashboard as data


@staff_member_required
@require_GET
def dashboard(request):
    """The monitoring dashboard: a range, its charts (each also a table and a CSV), provider health.

    ``?format=csv&chart=<name>`` answers one chart's numbers as CSV for the same range."""
    try:
        window = data.parse_window(request.GET)
    except data.RangeError as e:
        if request.GET.get("format") == "csv":
            return HttpResponse(str(e), status=400, content_type="text/plain; charset=utf-8")
        return render(
            request,
            "usage/dashboard.html",
            {"range_error": str(e), "presets": data.PRESETS, "picked": request.GET},
            status=400,
        )
    if request.GET.get("format") == "csv":
        return _csv(request, window)
    from providers.health import provider_health

    live = request.GET.get("live") == "1"
    providers = async_to_sync(provider_health)(live=live)
    query = urlencode(window.params())
    charts = data.charts(window)
    for chart in charts:
        chart.csv_url = f"?{query}&{urlencode({'format': 'csv', 'chart': chart.name})}"
    return render(
        request,
        "usage/dashboard.html",
        {
            **data.summary(window.since, window.until),
            "window": window,
            "presets": data.PRESETS,
            # The custom inputs start from the range shown.
            "picked": {
                "range": window.preset,
                "from": data.local(window.since),
                "to": data.local(window.until),
            },
            "charts": charts,
            "query": query,
            "providers": data.with_error_rates(providers),
            "live": live,
        },
    )


def _csv(request, window: data.Window) -> HttpResponse:
    name = request.GET.get("chart", "")
    if name not in data.CHARTS:
        choices = ", ".join(data.CHARTS)
        return HttpResponse(
            f"Unknown chart “{name[:40]}”: choose one of {choices}.",
            status=400,
            content_type="text/plain; charset=utf-8",
        )
    [chart] = [c for c in data.charts(window) if c.name == name]
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    stamp = f"{window.since:%Y%m%dT%H%M}-{window.until:%Y%m%dT%H%M}"
    response["Content-Disposition"] = f'attachment; filename="chimera-{name}-{stamp}.csv"'
    writer = csv.writer(response)
    writer.writerow(chart.columns)
    writer.writerows(chart.cells())
    return response
