from __future__ import annotations

from django.contrib import admin
from django.urls import include, path

from chimera import views

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/signup/", views.signup, name="signup"),
    path("accounts/settings/", views.account_settings, name="account-settings"),
    path("accounts/", include("django.contrib.auth.urls")),
    path("api/", include("chat.api_urls")),
    path("usage/", include("usage.urls")),
    path("", include("chat.urls")),
]
