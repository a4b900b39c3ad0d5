"""Open page sockets follow the account: signing out closes that session's sockets, and a
deactivated account's sockets all close (``ChatConsumer.session_ended``).

Sent through the channel layer, so a socket held by another web process closes too. If the layer
is unreachable (Redis down) the sign-out still succeeds and the session is gone, but sockets
opened under it stay open until they are closed or the layer is back (logged as a warning).
"""

from __future__ import annotations

import logging

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_logged_out
from django.db.models.signals import post_save
from django.dispatch import receiver

log = logging.getLogger(__name__)

SIGNED_OUT = "You signed out. Sign in again to keep chatting."
DEACTIVATED = "This account was deactivated."


def session_group(session_key: str) -> str:
    return f"session-{session_key}"


def user_group(user_id) -> str:
    return f"user-{user_id}"


def end_sockets(group: str, reason: str) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.group_send)(group, {"type": "session.ended", "reason": reason})
    except Exception as exc:  # never fail a sign-out over it
        log.warning("could not close the sockets of %s: %s", group.split("-")[0], exc)


@receiver(user_logged_out)
def _signed_out(sender, request=None, user=None, **kwargs) -> None:
    key = getattr(getattr(request, "session", None), "session_key", None)
    if key:
        end_sockets(session_group(key), SIGNED_OUT)


@receiver(post_save, sender=get_user_model())
def _deactivated(sender, instance, created=False, **kwargs) -> None:
    if not created and not instance.is_active:
        end_sockets(user_group(instance.pk), DEACTIVATED)
