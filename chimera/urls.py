from __future__ import annotations

from django.contrib import admin
from django.templatetags.static import static
from django.urls import include, path
from django.views.generic import RedirectView

from accounts.throttle import throttled
from usage.metrics import metrics_view

urlpatterns = [
    # Browsers ask for /favicon.ico on their own (a link rel=icon in base.html names the SVG).
    path("favicon.ico", RedirectView.as_view(url=static("favicon.svg"), permanent=True)),
    path("admin/login/", throttled("admin-login", per_username=True)(admin.site.login)),
    path("admin/", admin.site.urls),
    path("accounts/", include("accounts.urls")),
    path("api/", include("chat.api_urls")),
    path("usage/", include("usage.urls")),
    path("metrics", metrics_view, name="metrics"),  # Prometheus; its own bearer token
    path("knowledge/", include("knowledge.urls")),
    path("", include("chat.urls")),
]
