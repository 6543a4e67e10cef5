"""ASGI entry point: HTTP goes to Django, WebSockets to Channels consumers."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "channels_tutorial.settings")

# Set up Django (apps, settings) before anything imports models or consumers.
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from core.routing import not_found  # noqa: E402
from realtime.origin import AllowedHostsOriginValidator  # noqa: E402
from realtime.tickets import TicketAuthMiddleware  # noqa: E402

from . import routing  # noqa: E402

# A path no route matches gets 404 (not_found, after every route).
websocket = URLRouter([*routing.websocket_urlpatterns, not_found])
# The socket's user: the session's (Channels' AuthMiddlewareStack), or a ticket's.
websocket = AuthMiddlewareStack(TicketAuthMiddleware(websocket))

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        # Channels' Origin check; realtime's counts what it refuses (docs/monitoring.md).
        "websocket": AllowedHostsOriginValidator(websocket),
    }
)
