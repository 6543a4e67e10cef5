"""Prometheus metrics for sockets, frames, deliveries and the channel layer.

What moves with every frame is tallied in the worker and added once a second
(metrics.tally). docs/monitoring.md lists each metric and what moves it.
"""

import functools
import time
from dataclasses import dataclass

from django.conf import settings
from prometheus_client import Counter, Gauge, Histogram

from metrics.tally import Tally, TallyHistogram, tallied

# Where the sender stamps an event (time.time(), seconds) so that each receiving socket
# can tell how late it came: the workers, and the replicas of one host, share a clock.
SENT_AT = "realtime_sent_at"

# Seconds: a broadcast to a busy room takes milliseconds; a lag past a second is trouble.
LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

SOCKETS_OPEN = Gauge(
    "realtime_sockets_open",
    "WebSockets open now, by route.",
    ["route"],
    # Summed over the workers that are alive: a dead worker's sockets are gone.
    multiprocess_mode="livesum",
)
SOCKETS_LIMIT = Gauge(
    "realtime_sockets_limit",
    "Sockets the live workers may hold open: their caps (REALTIME_WORKER_SOCKETS), summed.",
    multiprocess_mode="livesum",
)
PRESENT = Gauge(
    "realtime_presence_sockets",
    "Sockets listed in their groups' presence (PresenceMixin), by route.",
    ["route"],
    multiprocess_mode="livesum",
)
PRESENCE_EXPIRED = Counter(
    "realtime_presence_expired_total",
    "Presence entries taken out because their worker stopped refreshing them (it died).",
)
HANDSHAKES_ACCEPTED = Counter(
    "realtime_handshakes_accepted_total", "WebSocket handshakes accepted.", ["route"]
)
HANDSHAKES_REFUSED = Counter(
    "realtime_handshakes_refused_total",
    "WebSocket handshakes refused (HTTP 403, or accepted only to close), by reason.",
    ["route", "reason"],
)
CLOSES = Counter(
    "realtime_socket_closes_total", "WebSockets closed, by close code.", ["route", "code"]
)
FRAMES_RECEIVED = Counter(
    "realtime_frames_received_total", "Frames received from clients.", ["route"]
)
FRAMES_RECEIVED_BYTES = Counter(
    "realtime_frames_received_bytes_total", "Bytes of the frames received.", ["route"]
)
FRAMES_SENT = Counter("realtime_frames_sent_total", "Frames sent to clients.", ["route"])
FRAMES_SENT_BYTES = Counter(
    "realtime_frames_sent_bytes_total", "Bytes of the frames sent.", ["route"]
)
ERROR_FRAMES = Counter(
    "realtime_error_frames_total", "Error frames sent to clients, by kind.", ["route", "kind"]
)
FRAMES_DROPPED = Counter(
    "realtime_frames_dropped_total",
    "Frames dropped because their socket went past its rate limit.",
    ["route"],
)
GROUP_SEND_SECONDS = Histogram(
    "realtime_group_send_seconds", "Time a group_send took.", buckets=LAG_BUCKETS
)
DELIVERY_LAG_SECONDS = Histogram(
    "realtime_delivery_lag_seconds",
    "From a sender's group_send to a receiving socket's send.",
    ["route"],
    buckets=LAG_BUCKETS,
)
LAYER_FAILURES = Counter(
    "realtime_channel_layer_failures_total",
    "Channel-layer calls that failed (Redis unreachable, restarted, timed out).",
    ["operation"],
)
RESUMES = Counter(
    "realtime_resumes_total",
    "Clients that came back with a position: recovered (sent what they missed) or not.",
    ["route", "recovered"],
)


@dataclass(frozen=True)
class RouteMetrics:
    """One route's children, labelled once: a frame then costs no label lookup."""

    sockets_open: Gauge
    accepted: Counter
    frames_received: Tally
    frames_received_bytes: Tally
    frames_sent: Tally
    frames_sent_bytes: Tally
    frames_dropped: Counter
    delivery_lag: TallyHistogram
    present: Gauge
    route: str

    def refused(self, reason: str) -> None:
        HANDSHAKES_REFUSED.labels(self.route, reason).inc()

    def closed(self, code: int | None) -> None:
        CLOSES.labels(self.route, str(code)).inc()

    def error_frame(self, kind: str) -> None:
        ERROR_FRAMES.labels(self.route, kind).inc()

    def resumed(self, recovered: bool) -> None:
        RESUMES.labels(self.route, "true" if recovered else "false").inc()

    def sent(self, text: str | None, data: bytes | None, sent_at: float | None) -> None:
        self.frames_sent.inc()
        self.frames_sent_bytes.inc(frame_size(text, data))
        if sent_at is not None:
            self.delivery_lag.observe(max(time.time() - sent_at, 0.0))

    def sent_frames(self, count: int, size: int, sent_at: float | None) -> None:
        """`count` sockets sent the same frame of `size` bytes (realtime.fanout)."""
        self.frames_sent.inc(count)
        self.frames_sent_bytes.inc(count * size)
        if sent_at is not None:
            self.delivery_lag.observe(max(time.time() - sent_at, 0.0), count)


class _Uncounted:
    def inc(self, amount: float = 1) -> None:
        pass

    dec = observe = inc


class UncountedRoute(RouteMetrics):
    """What a consumer counts with when settings.METRICS is off: nothing."""

    def refused(self, reason: str) -> None:
        pass

    def closed(self, code: int | None) -> None:
        pass

    def error_frame(self, kind: str) -> None:
        pass

    def resumed(self, recovered: bool) -> None:
        pass

    def sent(self, text: str | None, data: bytes | None, sent_at: float | None) -> None:
        pass

    def sent_frames(self, count: int, size: int, sent_at: float | None) -> None:
        pass


def frame_size(text: str | None, data: bytes | None) -> int:
    """A frame's payload in bytes; ASCII text (most JSON) without encoding it."""
    if text is None:
        return len(data or b"")
    return len(text) if text.isascii() else len(text.encode())


def enabled() -> bool:
    return getattr(settings, "METRICS", True)


# Labels known in advance: their series exist (at 0) from a route's first socket on, so a
# rate or an alert has something to read before the first failure.
ERROR_KINDS = ("bad_json", "binary", "unknown_type", "rate_limit", "position", "invalid")
REFUSAL_REASONS = ("layer_unavailable", "user_sockets", "worker_full")
LAYER_OPERATIONS = ("group_send", "group_add", "group_discard", "receive", "send")


@functools.cache
def for_route(route: str) -> RouteMetrics:
    if not enabled():
        uncounted = _Uncounted()
        return UncountedRoute(*[uncounted] * 9, route=route)
    for kind in ERROR_KINDS:
        ERROR_FRAMES.labels(route, kind)
    for reason in REFUSAL_REASONS:
        HANDSHAKES_REFUSED.labels(route, reason)
    for recovered in ("true", "false"):
        RESUMES.labels(route, recovered)
    for operation in LAYER_OPERATIONS:
        LAYER_FAILURES.labels(operation)
    return RouteMetrics(
        sockets_open=SOCKETS_OPEN.labels(route),
        accepted=HANDSHAKES_ACCEPTED.labels(route),
        frames_received=tallied(Tally(FRAMES_RECEIVED.labels(route))),
        frames_received_bytes=tallied(Tally(FRAMES_RECEIVED_BYTES.labels(route))),
        frames_sent=tallied(Tally(FRAMES_SENT.labels(route))),
        frames_sent_bytes=tallied(Tally(FRAMES_SENT_BYTES.labels(route))),
        frames_dropped=FRAMES_DROPPED.labels(route),
        delivery_lag=tallied(TallyHistogram(DELIVERY_LAG_SECONDS.labels(route))),
        present=PRESENT.labels(route),
        route=route,
    )


@functools.cache
def group_send_seconds() -> TallyHistogram:
    return tallied(TallyHistogram(GROUP_SEND_SECONDS))


def stamp(event: dict) -> dict:
    """The event with the time it was sent, for the receivers' delivery lag."""
    return {**event, SENT_AT: time.time()} if enabled() else event


# The scope key under which CountedSocket hands the consumer its socket's counts.
COUNTS = "realtime.counts"


class SocketCounts:
    """One socket's counting, as CountedSocket sees its messages go by: its handshake,
    frames and bytes each way, the delivery lag of the frames it is sent, its close."""

    __slots__ = ("route", "accepted", "refusing", "close_code", "sent_at")

    def __init__(self, route: RouteMetrics) -> None:
        self.route = route
        self.accepted = False
        self.refusing = False  # accepted only to say why it is turned down: not counted
        self.close_code = None
        self.sent_at = None  # the stamp of the event the consumer is handling (SENT_AT)

    def counting_send(self, send):
        """The server's send, counting what goes by. A plain function returning the
        server's own awaitable: no coroutine of its own per frame."""
        sent, route = self.route.sent, self.route

        def counted_send(message):
            kind = message["type"]
            if kind == "websocket.send":
                if SENT_AT in message:  # a stream's frame, with its event's stamp
                    stamp = message.pop(SENT_AT)
                else:  # an event's lag: its first frame's
                    stamp, self.sent_at = self.sent_at, None
                sent(message.get("text"), message.get("bytes"), stamp)
            elif kind == "websocket.accept" and not self.refusing:
                self.accepted = True
                route.accepted.inc()
                route.sockets_open.inc()
            elif kind == "websocket.close" and self.accepted and self.close_code is None:
                self.close_code = message.get("code", 1000)
            return send(message)

        return counted_send

    def counting_receive(self, receive):
        received, received_bytes = self.route.frames_received, self.route.frames_received_bytes

        async def counted_receive():
            message = await receive()
            kind = message["type"]
            if kind == "websocket.receive":
                received.inc()
                received_bytes.inc(frame_size(message.get("text"), message.get("bytes")))
            elif kind == "websocket.disconnect" and self.close_code is None:
                self.close_code = message.get("code")
            return message

        return counted_receive

    def ended(self) -> None:
        if self.accepted:
            self.route.sockets_open.dec()
            self.route.closed(self.close_code)


class CountedSocket:
    """ASGI middleware around a consumer: its socket's handshake, frames, bytes, delivery
    lag and close counted under `route` (realtime_* metrics). The consumer finds the
    counts in scope[COUNTS], for what only it knows (refusals, error frames, resumes)."""

    def __init__(self, inner, route: str) -> None:
        self.inner, self.route = inner, route

    async def __call__(self, scope, receive, send):
        counts = SocketCounts(for_route(self.route))
        try:
            await self.inner(
                {**scope, COUNTS: counts},
                counts.counting_receive(receive),
                counts.counting_send(send),
            )
        finally:
            counts.ended()
