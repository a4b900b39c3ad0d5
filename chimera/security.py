"""The Content-Security-Policy every response carries (Django 5.2 has none built in).

The page runs only its own files: no inline script, no eval (htmx is configured without it, see
base.html), no inline style elements; images and media of answers may come from https URLs (the
media parts' safe-URL check allows nothing else); sockets to this host. The policy is the
``CHIMERA_CSP`` setting (settings.py; "" sends none).
"""

from __future__ import annotations

from asgiref.sync import iscoroutinefunction
from django.conf import settings
from django.utils.decorators import sync_and_async_middleware


def _policy(response) -> None:
    policy = settings.CHIMERA_CSP
    if policy and "Content-Security-Policy" not in response:
        response["Content-Security-Policy"] = policy


@sync_and_async_middleware
def content_security_policy(get_response):
    if iscoroutinefunction(get_response):

        async def middleware(request):
            response = await get_response(request)
            _policy(response)
            return response

    else:

        def middleware(request):
            response = get_response(request)
            _policy(response)
            return response

    return middleware
