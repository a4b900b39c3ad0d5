"""API keys over the API: list, create (the key is in this one response only), revoke."""

from __future__ import annotations

import uuid

from ninja import Router

from accounts import apikeys
from accounts.models import ApiKey
from chat.api.schemas import ApiKeyIn, ApiKeyOut, ErrorOut, NewApiKeyOut
from chat.errors import TurnError

router = Router(tags=["api keys"])


def key_json(key: ApiKey) -> dict:
    return {
        "id": key.id,
        "name": key.name,
        "prefix": key.prefix,
        "createdAt": key.created_at,
        "lastUsedAt": key.last_used_at,
        "revokedAt": key.revoked_at,
    }


@router.get(
    "", response={200: list[ApiKeyOut], 401: ErrorOut}, summary="Your API keys (never the keys themselves)"
)
def list_keys(request):
    return [key_json(k) for k in ApiKey.objects.filter(user=request.auth)]


@router.post(
    "",
    response={201: NewApiKeyOut, 401: ErrorOut, 403: ErrorOut, 422: ErrorOut},
    summary="Create a key; it is shown in this response only",
)
def create_key(request, payload: ApiKeyIn):
    # A key may not mint keys: a leaked one could otherwise make another that outlives its revocation.
    if "Authorization" in request.headers:
        raise TurnError(
            "forbidden",
            "An API key cannot create API keys: sign in and create one at /accounts/settings/.",
            403,
        )
    key, raw = apikeys.create_api_key(request.auth, payload.name.strip() or "default")
    return 201, {**key_json(key), "key": raw}


@router.delete(
    "/{key_id}",
    response={204: None, 401: ErrorOut, 403: ErrorOut, 404: ErrorOut, 422: ErrorOut},
    summary="Revoke a key: requests with it get 401 from then on",
)
def revoke_key(request, key_id: uuid.UUID):
    if not apikeys.revoke(request.auth, key_id):
        raise TurnError("not_found", "You have no active key with that id.", 404)
    return 204, None
