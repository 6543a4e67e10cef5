import contextlib
import functools
import json
import logging
from urllib.parse import parse_qs

from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings

from compat.channels import SkippableDbCleanup

from . import metrics
from .frames import PreparedFrames
from .layer import ChannelLayerLost, GuardedLayer
from .limits import CLOSE_TOO_MANY_SOCKETS, CLOSE_TRY_AGAIN, WorkerSockets, user_sockets_for
from .metrics import COUNTS, CountedSocket
from .ratelimit import RateLimited

logger = logging.getLogger(__name__)

# Close code when the channel layer is lost (e.g. Redis restarting): the client's socket
# is closed cleanly and it reconnects, joining its groups again.
CLOSE_LAYER_LOST = 1011
# Close code for a socket with no signed-in user (no session, no ticket) where
# settings.REALTIME_GUESTS is off.
CLOSE_SIGN_IN_REQUIRED = 4401
# Close code for a socket that may not join what it asked for, or post what it sent
# (may_join, may_post).
CLOSE_FORBIDDEN = 4403


class Refused(Exception):
    """Raised in a consumer's handshake or handlers: the socket is turned down (during
    the handshake) or closed with `code`, `str(error)` sent first as an error frame."""

    def __init__(self, reason: str, code: int, detail: str = "") -> None:
        super().__init__(detail)
        self.reason, self.code = reason, code


class JsonConsumer(PreparedFrames, SkippableDbCleanup, AsyncJsonWebsocketConsumer):
    """A JSON WebSocket consumer that answers bad frames with an error frame, not a close.

    Override points:

    - ``on_<type>(content)``: one method per client frame type (``{"type": "echo"}`` calls
      ``on_echo``); unknown types, bad JSON and binary frames get
      ``{"type": "error", "detail": ...}`` and the socket stays open.
    - ``join(group)`` / ``leave(group)``: group membership, left again on disconnect.
    - ``event_db_cleanup``: Channels closes stale database connections before every
      channel-layer event, a hop to the sync thread and back. Set it False when your
      event handlers only forward to the socket.
    - ``refuse(reason, code=None, detail="")``: turn the handshake down, counted by
      reason in the metrics; with a code, accept first so the client reads why.
    - ``authenticate()``: who this socket is, as ``self.user`` and ``scope["user"]``: the
      scope's user (the session's, from AuthMiddlewareStack, or a ticket's, from
      realtime.tickets.TicketAuthMiddleware), else a guest (AnonymousUser) if
      ``allow_guests`` (by default settings.REALTIME_GUESTS), else refused with 4401.
    - ``user_socket_limit``: how many sockets one signed-in user may hold open, on every
      worker and replica (None: settings.REALTIME_USER_SOCKETS; 0: no cap); past it the
      handshake is refused with 4429 (realtime/limits.py).
    - ``may_join(group)``: whether this socket may join `group` (join() asks; False
      turns the handshake down, or closes an open socket, with 4403).
    - ``may_post(content)``: whether this socket may send this frame (asked before its
      ``on_<type>``; False closes with 4403).
    - ``raise Refused(reason, code, detail)`` anywhere in the handshake or a handler:
      the same refusal, with your own reason and close code.
    - ``joined_group(group)``, ``leaving(group)``, ``ended()``: hooks for mixins, such
      as realtime.presence.PresenceMixin (who is in each group).
    - ``metrics_route``: the ``route`` label of this socket's metrics (realtime/metrics.py;
      by default the class name without "Consumer", lower case: ``route_label()``).
    - ``@frame`` handlers (realtime/frames.py): group events that become the same frame
      for every socket; on the stack's own layer (realtime/fanout.py) the worker builds
      it once per message and writes it to each socket.

    as_asgi() wraps the socket: its frames counted (metrics.CountedSocket), the worker's
    sockets capped (limits.WorkerSockets: 1013 past the cap) and each socket's frames
    limited to settings.WS_RATE_LIMIT a second (ratelimit.RateLimited). If the channel layer itself
    fails, the socket closes with 1011 so the client reconnects (1013 "try again later"
    when it failed during the handshake); any other error in a handler is the handler's,
    as in Channels.
    """

    allow_guests: bool | None = None  # None: settings.REALTIME_GUESTS
    user_socket_limit: int | None = None  # None: settings.REALTIME_USER_SOCKETS
    metrics_route: str | None = None  # None: the class name without "Consumer", lower case
    _channel_layer = None

    # Channels sets this in __call__; wrapped, the layer's own failures raise
    # ChannelLayerLost, told apart from errors of a handler's own code.
    @property
    def channel_layer(self):
        return self._channel_layer

    @channel_layer.setter
    def channel_layer(self, layer):
        self._channel_layer = None if layer is None else GuardedLayer(layer)

    @classmethod
    def route_label(cls) -> str:
        return cls.metrics_route or cls.__name__.removesuffix("Consumer").lower()

    @classmethod
    def as_asgi(cls, **initkwargs):
        """Channels' app for this consumer, its socket wrapped: counted (metrics.py), within
        its worker's cap (limits.py) and rate-limited (ratelimit.py) before any frame
        reaches the consumer."""
        consumer = super().as_asgi(**initkwargs)
        app = CountedSocket(WorkerSockets(RateLimited(consumer)), cls.route_label())
        app.consumer_class, app.consumer_initkwargs = cls, initkwargs
        return app

    @property
    def accepted(self) -> bool:
        return self.counts.accepted

    async def __call__(self, scope, receive, send):
        self.joined: list[str] = []
        self.user_slot = None  # (UserSockets, user key) once hold_user_slot() took one
        self.counts = scope[COUNTS]
        self.route_metrics = self.counts.route
        try:
            await super().__call__(scope, receive, send)
        except ChannelLayerLost as lost:
            logger.warning("%s (%s); closing the socket for a reconnect", lost, lost.__cause__)
            with contextlib.suppress(OSError):  # the client may be gone already
                if not self.accepted:  # a close before accept would be HTTP 403
                    self.counts.refusing = True
                    self.route_metrics.refused("layer_unavailable")
                    await send({"type": "websocket.accept"})
                code = CLOSE_LAYER_LOST if self.accepted else CLOSE_TRY_AGAIN
                await send({"type": "websocket.close", "code": code})
        finally:
            self.ended()
            await self._release_user_slot()
            await self._close_channel()

    async def _close_channel(self) -> None:
        """On the stack's own layer, the socket's channel ends with it (close_channel)."""
        layer = getattr(self.channel_layer, "layer", None)
        if hasattr(layer, "close_channel") and hasattr(self, "channel_name"):
            with contextlib.suppress(*GuardedLayer.errors):  # Redis may be why it ended
                await layer.close_channel(self.channel_name)

    async def dispatch(self, message):
        self.counts.sent_at = message.get(metrics.SENT_AT)  # the event's, for its lag
        try:
            await super().dispatch(message)
        finally:
            self.counts.sent_at = None

    async def websocket_connect(self, message):
        try:
            self.user = self.scope["user"] = await self.authenticate()
            await self.hold_user_slot()
            await super().websocket_connect(message)  # joins self.groups, calls connect()
        except Refused as refused:
            await self._refused(refused)

    async def authenticate(self):
        """Who this socket is: the scope's user (the session's, or a ticket's:
        realtime/tickets.py), or a guest."""
        # Imported here: it needs Django's app registry, and this module's close codes
        # are read without it (proving_ground).
        from django.contrib.auth.models import AnonymousUser

        user = self.scope.get("user")
        if user is not None and user.is_authenticated:
            return user
        guests = self.allow_guests
        if not (getattr(settings, "REALTIME_GUESTS", True) if guests is None else guests):
            raise Refused("sign_in_required", CLOSE_SIGN_IN_REQUIRED, "sign in first")
        return AnonymousUser()

    async def hold_user_slot(self) -> None:
        """Count this socket against its signed-in user's cap (user_socket_limit), on
        every worker and replica; refused with 4429 past it. Guests are capped per
        address, by nginx."""
        limit = self.user_socket_limit
        if limit is None:
            limit = getattr(settings, "REALTIME_USER_SOCKETS", 0)
        if not limit or not self.user.is_authenticated:
            return
        if (sockets := user_sockets_for(self.channel_layer.layer)) is None:
            return
        key = str(self.user.pk)
        with self.channel_layer.failing("user_sockets"):
            if not await sockets.take(key, self.channel_name, limit):
                raise Refused(
                    "user_sockets",
                    CLOSE_TOO_MANY_SOCKETS,
                    f"you have {limit} sockets open already (tabs, devices): close one",
                )
        self.user_slot = (sockets, key)

    async def _release_user_slot(self) -> None:
        if self.user_slot is not None:
            sockets, key = self.user_slot
            with contextlib.suppress(*GuardedLayer.errors):  # else it expires
                await sockets.release(key, self.channel_name)

    async def may_join(self, group: str) -> bool:
        return True

    async def may_post(self, content) -> bool:
        return True

    @functools.cached_property
    def query(self) -> dict[str, list[str]]:
        """The handshake's query string, parsed: {name: [values]}."""
        return parse_qs(self.scope.get("query_string", b"").decode("latin-1"))

    async def _refused(self, refused: Refused) -> None:
        if self.accepted:
            if str(refused):
                await self.send_error(str(refused), kind="refused")
            await self.close(code=refused.code)
        else:
            await self.refuse(refused.reason, code=refused.code, detail=str(refused))

    async def refuse(self, reason: str, code: int | None = None, detail: str = "") -> None:
        """Turn the handshake down: HTTP 403, or with a close code, accept, send `detail`
        as an error frame and close with `code` (a browser cannot read a 403's reason)."""
        self.counts.refusing = True
        self.route_metrics.refused(reason)
        if code is None:
            await self.close()
            return
        await self.accept()
        if detail:
            await self.send_error(detail, kind="refused")
        await self.close(code=code)

    async def websocket_disconnect(self, message):
        for group in self.joined:
            with contextlib.suppress(ChannelLayerLost):  # Redis may be the reason we left
                await self.leaving(group)
                await self.channel_layer.group_discard(group, self.channel_name)
        await super().websocket_disconnect(message)

    async def join(self, group: str) -> None:
        """Join a group; left again on disconnect."""
        if not await self.may_join(group):
            raise Refused("forbidden", CLOSE_FORBIDDEN, "you may not join this room")
        await self.channel_layer.group_add(group, self.channel_name)
        if group not in self.joined:
            self.joined.append(group)
            await self.joined_group(group)

    async def leave(self, group: str) -> None:
        """Leave a group joined with join()."""
        if group in self.joined:
            self.joined.remove(group)
            await self.leaving(group)
        await self.channel_layer.group_discard(group, self.channel_name)

    # Hooks for mixins (realtime.presence.PresenceMixin): each calls super() in turn.
    async def joined_group(self, group: str) -> None:
        """After join() added the socket to `group`, once per group."""

    async def leaving(self, group: str) -> None:
        """Before the socket leaves `group`: leave(), or its disconnect."""

    def ended(self) -> None:
        """After the socket ended, however it ended (its layer lost, too)."""

    async def receive(self, text_data=None, bytes_data=None, **kwargs):
        if text_data is None:
            await self.send_error("binary frames are not accepted; send JSON text", kind="binary")
            return
        try:
            content = await self.decode_json(text_data)
        except ValueError:
            await self.send_error("frame is not valid JSON", kind="bad_json")
            return
        await self.receive_json(content, **kwargs)

    async def receive_json(self, content, **kwargs):
        kind = content.get("type") if isinstance(content, dict) else None
        handler = getattr(self, f"on_{kind}", None) if isinstance(kind, str) else None
        if handler is None:
            await self.send_error(f"unknown frame type: {json.dumps(kind)}", kind="unknown_type")
            return
        try:
            if not await self.may_post(content):
                raise Refused("forbidden", CLOSE_FORBIDDEN, "you may not post here")
            await handler(content)
        except Refused as refused:
            await self._refused(refused)

    async def send_error(self, detail: str, kind: str = "invalid") -> None:
        """An error frame; `kind` labels it in the metrics (realtime_error_frames_total)."""
        self.route_metrics.error_frame(kind)
        await self.send_json({"type": "error", "detail": detail})
