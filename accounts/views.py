from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.contrib.auth.forms import UserCreationForm
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from accounts import apikeys
from accounts.models import User
from accounts.throttle import throttled
from usage import personal


class SignupForm(UserCreationForm):
    class Meta:
        model = User
        fields = ("username", "email")


@require_http_methods(["GET", "POST"])
@throttled("signup")
def signup(request):
    if request.user.is_authenticated:
        return redirect("chat:index")
    if not settings.CHIMERA_SIGNUP_OPEN:
        return render(request, "registration/signup.html", {"closed": True}, status=403)
    form = SignupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        user = form.save()
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        return redirect("chat:index")
    return render(request, "registration/signup.html", {"form": form}, status=400 if form.errors else 200)


class ApiKeyForm(forms.Form):
    name = forms.CharField(max_length=100, initial="default")


@login_required
@require_http_methods(["GET", "POST"])
def account_settings(request):
    new_key = None
    form = ApiKeyForm(request.POST or None)
    if request.method == "POST":
        if "revoke" in request.POST:
            apikeys.revoke(request.user, request.POST["revoke"])
            return redirect("account-settings")
        if form.is_valid():
            _, new_key = apikeys.create_api_key(request.user, form.cleaned_data["name"])
            form = ApiKeyForm()
    keys = request.user.api_keys.all()
    context = {
        "form": form,
        "keys": keys,
        "new_key": new_key,
        "month": personal.month(request.user),
        "limits": personal.standing(request.user),
    }
    return render(request, "account/settings.html", context)
