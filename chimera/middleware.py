"""Django's own middleware, run on the event loop instead of one thread hop per hook.

Under ASGI Django runs each hook of a ``MiddlewareMixin`` middleware (``process_request``,
``process_view``, ``process_response``) through ``sync_to_async`` on a thread of the request's own:
for the stack in settings that is about fifteen thread hops (and a thread started) before the first
token of every answer, and more after it. The hooks wrapped here do no I/O in the common case — they
read headers and cookies, set lazy attributes, add headers, compare a CSRF token — so they are called
inline. The two that can touch the database do it only after a change: the session is saved (once it
was modified) and messages are stored (once one was added or read); those responses still go through
``sync_to_async`` as Django would send them. Behaviour is Django's own: the same classes, the same hooks,
in the same order.
"""

from __future__ import annotations

from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth.middleware import AuthenticationMiddleware
from django.contrib.messages.middleware import MessageMiddleware
from django.contrib.sessions.middleware import SessionMiddleware
from django.core.checks import Tags, Warning, register
from django.middleware.clickjacking import XFrameOptionsMiddleware
from django.middleware.common import CommonMiddleware
from django.middleware.csrf import CsrfViewMiddleware
from django.middleware.security import SecurityMiddleware
from django.utils.module_loading import import_string


class Inline:
    """Mixed in before a Django ``MiddlewareMixin`` class: its hooks inline under ASGI (WSGI is
    Django's own call); ``response_needs_thread`` says when the response hook may do I/O."""

    def __init__(self, get_response: Any) -> None:
        super().__init__(get_response)  # type: ignore[call-arg]  # MiddlewareMixin's: sets async_mode
        hook = getattr(self, "process_view", None)
        if self.async_mode and hook is not None:  # type: ignore[attr-defined]
            # Django adapts process_view to the handler's mode: a coroutine function is used as it is.
            async def process_view(request, view, args, kwargs):
                return hook(request, view, args, kwargs)

            self.process_view = process_view

    async def __acall__(self, request):
        response = self.process_request(request) if hasattr(self, "process_request") else None
        response = response or await self.get_response(request)  # type: ignore[attr-defined]
        if hasattr(self, "process_response"):
            if self.response_needs_thread(request, response):
                response = await sync_to_async(self.process_response, thread_sensitive=True)(
                    request, response
                )
            else:
                response = self.process_response(request, response)
        return response

    def response_needs_thread(self, request, response) -> bool:
        return False


class Security(Inline, SecurityMiddleware):
    pass


class Sessions(Inline, SessionMiddleware):
    """Saving a changed session writes to its store: only then through a thread."""

    def response_needs_thread(self, request, response) -> bool:
        session = getattr(request, "session", None)
        return session is not None and (session.modified or settings.SESSION_SAVE_EVERY_REQUEST)


class Common(Inline, CommonMiddleware):
    pass


class Csrf(Inline, CsrfViewMiddleware):
    pass


class Authentication(Inline, AuthenticationMiddleware):
    """request.user stays lazy: it is read (in a thread) where it is used."""


class Messages(Inline, MessageMiddleware):
    """Messages added or read are stored (in the session or a cookie): only then through a thread."""

    def response_needs_thread(self, request, response) -> bool:
        storage = getattr(request, "_messages", None)
        return storage is not None and bool(storage.used or storage.added_new)


class FrameOptions(Inline, XFrameOptionsMiddleware):
    pass


# Django's deploy checks look for its own dotted paths in MIDDLEWARE (security.W001, W002, W003) and
# do not see these subclasses; settings silence those three and this check asks the same of the classes.
REQUIRED = (
    (SecurityMiddleware, "security.W001", "SecurityMiddleware: HSTS, nosniff, referrer policy, SSL redirect"),
    (XFrameOptionsMiddleware, "security.W002", "XFrameOptionsMiddleware: the X-Frame-Options header"),
    (CsrfViewMiddleware, "security.W003", "CsrfViewMiddleware: CSRF protection"),
)


@register(Tags.security, deploy=True)
def middleware_in_place(app_configs, **kwargs) -> list[Warning]:
    loaded = [import_string(path) for path in settings.MIDDLEWARE]
    return [
        Warning(
            f"No {what} in MIDDLEWARE (Django's own or one of chimera.middleware's).", id=f"chimera.{code}"
        )
        for base, code, what in REQUIRED
        if not any(isinstance(cls, type) and issubclass(cls, base) for cls in loaded)
    ]
