from __future__ import annotations

from django.contrib import admin
from django.urls import include, path

from accounts.throttle import throttled

urlpatterns = [
    path("admin/login/", throttled("admin-login", per_username=True)(admin.site.login)),
    path("admin/", admin.site.urls),
    path("accounts/", include("accounts.urls")),
    path("api/", include("chat.api_urls")),
    path("usage/", include("usage.urls")),
    path("knowledge/", include("knowledge.urls")),
    path("", include("chat.urls")),
]
