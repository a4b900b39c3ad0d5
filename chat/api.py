"""The REST/SSE API (django-ninja), mounted at /api/. OpenAPI at /api/docs."""

from __future__ import annotations

from ninja import NinjaAPI

api = NinjaAPI(title="Chimera API", version="2", urls_namespace="api")
