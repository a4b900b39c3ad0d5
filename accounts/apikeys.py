"""API keys: created once, shown once, stored as a SHA-256, listed and revocable."""

from __future__ import annotations

import hashlib
import secrets

from django.core.exceptions import ValidationError
from django.utils import timezone

from accounts.models import ApiKey, User

KEY_PREFIX = "chk_"


def _hash(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def create_api_key(user: User, name: str = "default") -> tuple[ApiKey, str]:
    """Returns the stored row and the raw key, which is never stored or shown again."""
    raw = KEY_PREFIX + secrets.token_urlsafe(32)
    key = ApiKey.objects.create(
        user=user, name=name[:100] or "default", prefix=raw[:12], hashed_key=_hash(raw)
    )
    return key, raw


def user_for_key(raw: str) -> User | None:
    if not raw.startswith(KEY_PREFIX) or len(raw) > 200:
        return None
    key = ApiKey.objects.select_related("user").filter(hashed_key=_hash(raw), revoked_at__isnull=True).first()
    if key is None or not key.user.is_active:
        return None
    # At most one write a minute per key: last-used is for people, not for billing.
    now = timezone.now()
    if key.last_used_at is None or (now - key.last_used_at).total_seconds() > 60:
        ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
    return key.user


def revoke(user: User, key_id) -> bool:
    try:
        keys = ApiKey.objects.filter(user=user, pk=key_id, revoked_at__isnull=True)
        return keys.update(revoked_at=timezone.now()) == 1
    except (ValidationError, ValueError):  # not a key id at all (a tampered form)
        return False
