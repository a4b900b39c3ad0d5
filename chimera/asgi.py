"""ASGI entry point: HTTP through Django, WebSockets through Channels."""

from __future__ import annotations

import gc
import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chimera.settings")

from django.conf import settings
from django.core.asgi import get_asgi_application

django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from chat import sweep  # noqa: E402
from chat.routing import websocket_urlpatterns  # noqa: E402
from flags import runtime as flags_runtime  # noqa: E402
from providers import breaker  # noqa: E402
from usage import schedule  # noqa: E402

http_app = django_asgi_app
if settings.DEBUG:
    # Plain daphne does not serve /static/ (ENVIRONMENT.md pothole 1).
    from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler

    http_app = ASGIStaticFilesHandler(django_asgi_app)

application = ProtocolTypeRouter(
    {
        "http": http_app,
        "websocket": AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
    }
)

# Answers whose process died are settled by every web process, from its start (chat/sweep.py); the
# background schedule (rollups, alerts, notification retries) runs in every web process too, each job
# once per slot whoever runs it (usage/schedule.py): `make run` needs no beat, the Procfile's beat adds one.
# The runtime flags' version and the breakers' states are read in the background too, so no turn waits
# on those reads (flags/runtime.py, providers/breaker.py).
sweep.start()
schedule.start()
flags_runtime.start()
breaker.start()

# Everything loaded so far (Django, the apps, the SDKs: a few hundred thousand objects) lives as long
# as the process: moved out of the collector's reach, a full collection no longer walks it. Measured
# inside daphne over 45 API turns: full collections took up to 104 ms before, a pause landing on
# whichever answer was streaming (bench/CHANGES.md).
gc.freeze()
