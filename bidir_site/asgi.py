"""ASGI entry point: HTTP to Django, WebSockets (same-origin, with the session's user) to the
channels consumers. The process also sweeps stale runs (``experiments_app.sweeper``), so a run
whose worker died is marked interrupted even while no worker is alive."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bidir_site.settings")
django_asgi_app = get_asgi_application()  # sets Django up before the consumers import models

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from experiments_app.routing import websocket_urlpatterns  # noqa: E402
from experiments_app.sweeper import start_stale_run_sweeper  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
    }
)
start_stale_run_sweeper()
