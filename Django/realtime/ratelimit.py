import json
import time

from django.conf import settings

from . import metrics

# Frames a second each socket may send, in bursts of up to RATE_BURST, unless settings
# say otherwise (WS_RATE_LIMIT, WS_RATE_BURST).
RATE_LIMIT = 10.0
RATE_BURST = 20
DROPPED = json.dumps({"type": "error", "detail": "rate limit exceeded; frame dropped"})


class TokenBucket:
    """`rate` actions per second on average, bursts of up to `burst`."""

    def __init__(self, rate: float, burst: int, clock=time.monotonic):
        self.rate, self.burst, self.clock = rate, burst, clock
        self.tokens = float(burst)
        self.updated = clock()

    def allow(self) -> bool:
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


class RateLimited:
    """ASGI middleware around a consumer: each socket may send settings.WS_RATE_LIMIT
    frames a second (bursts of WS_RATE_BURST); a frame past that never reaches the
    consumer, and its client gets an error frame instead."""

    def __init__(self, inner) -> None:
        self.inner = inner

    async def __call__(self, scope, receive, send):
        rate = getattr(settings, "WS_RATE_LIMIT", RATE_LIMIT)
        bucket = TokenBucket(rate, getattr(settings, "WS_RATE_BURST", RATE_BURST))
        route = scope[metrics.COUNTS].route

        async def limited_receive():
            while True:
                message = await receive()
                if message["type"] != "websocket.receive" or bucket.allow():
                    return message
                route.frames_dropped.inc()
                route.error_frame("rate_limit")
                await send({"type": "websocket.send", "text": DROPPED})

        await self.inner(scope, limited_receive, send)
