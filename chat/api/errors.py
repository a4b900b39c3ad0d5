"""Every API error is JSON ``{"error": {"code", "message"[, "field"]}}`` with the right status.

Bad input never becomes a 500: ninja's validation errors, unparseable bodies, bodies
over ``DATA_UPLOAD_MAX_MEMORY_SIZE`` and auth failures all land here.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar, cast

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, HttpError, ValidationError

from chat.errors import RateLimited, TurnError

log = logging.getLogger(__name__)

CODES = {
    400: "bad_request",
    401: "not_authenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    422: "validation_error",
    429: "rate_limited",
    503: "unavailable",
}


def error_response(
    code: str,
    message: str,
    status: int,
    field: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JsonResponse:
    error: dict[str, Any] = {"code": code, "message": message}
    if field:
        error["field"] = field
    response = JsonResponse(
        {"error": error, **extra}, status=status, json_dumps_params={"ensure_ascii": False}
    )
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def _too_large() -> JsonResponse:
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    return error_response("body_too_large", f"The request body is larger than the {limit:,}-byte limit.", 413)


def field_name(loc: tuple | list) -> str:
    """ninja's ``("body", "payload", "config", "temperature")`` -> ``config.temperature``;
    list positions become ``messages[0].role``."""
    parts = list(loc)
    if parts and parts[0] in ("body", "query", "path", "header", "cookie", "form"):
        source = parts.pop(0)
        if source == "body" and parts and parts[0] == "payload":
            parts.pop(0)
    name = ""
    for part in parts:
        if isinstance(part, int):
            name += f"[{part}]"
        else:
            name += f".{part}" if name else str(part)
    return name


def _validation(request, exc: ValidationError) -> JsonResponse:
    first = exc.errors[0] if exc.errors else {}
    field = field_name(first.get("loc", ()))
    message = first.get("msg", "Invalid input")
    if not field:
        return error_response("invalid_body", "The request body must be a JSON object.", 422, "body")
    return error_response("validation_error", f"{field}: {message}.", 422, field)


def _http_error(request, exc: HttpError) -> JsonResponse:
    if isinstance(exc.__cause__, RequestDataTooBig):
        return _too_large()
    if isinstance(exc.__cause__, TurnError):  # the parser refused the body (chat.api.StorableTextParser)
        return _turn_error(request, exc.__cause__)
    status = exc.status_code
    if status == 400 and str(exc).startswith("Cannot parse request body"):
        return error_response("malformed_json", "The request body is not valid JSON.", 400, "body")
    return error_response(CODES.get(status, "error"), str(exc), status)


def _turn_error(request, exc: TurnError) -> JsonResponse:
    headers = {}
    if isinstance(exc, RateLimited):
        from chat.api.streams import rate_limit_headers

        headers["Retry-After"] = str(exc.retry_after)
        headers |= rate_limit_headers(exc.quota)
    elif exc.status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="chimera"'
    return error_response(exc.code, exc.message, exc.status, exc.field, headers)


def _not_authenticated(request, exc: AuthenticationError) -> JsonResponse:
    return error_response(
        "not_authenticated",
        "Sign in, or send an API key as 'Authorization: Bearer <key>' (create one at /accounts/settings/).",
        401,
        headers={"WWW-Authenticate": 'Bearer realm="chimera"'},
    )


def _not_found(request, exc: Http404) -> JsonResponse:
    return error_response("not_found", str(exc) or "Not found.", 404)


def _unexpected(request, exc: Exception) -> JsonResponse:
    log.exception("API error on %s %s", request.method, request.path, exc_info=exc)
    return error_response("internal_error", "Something went wrong on our side. Try again.", 500)


E = TypeVar("E", bound=Exception)


def _on(api: NinjaAPI, exc_class: type[E], handler: Callable[[HttpRequest, E], HttpResponse]) -> None:
    # ninja types a handler's second argument as "the exception or its class"; it only ever
    # passes the instance, which is what these handlers take.
    api.add_exception_handler(exc_class, cast(Any, handler))


def install(api: NinjaAPI) -> None:
    _on(api, Exception, _unexpected)
    _on(api, ValidationError, _validation)
    _on(api, HttpError, _http_error)
    _on(api, AuthenticationError, _not_authenticated)
    _on(api, TurnError, _turn_error)
    _on(api, Http404, _not_found)
    _on(api, RequestDataTooBig, lambda request, exc: _too_large())
