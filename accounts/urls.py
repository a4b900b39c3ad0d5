from __future__ import annotations

from django.contrib.auth import views as auth_views
from django.urls import include, path

from accounts import views
from accounts.throttle import throttled

urlpatterns = [
    path("login/", throttled("login", per_username=True)(auth_views.LoginView.as_view()), name="login"),
    path("signup/", views.signup, name="signup"),
    path("settings/", views.account_settings, name="account-settings"),
    path("", include("django.contrib.auth.urls")),
]
