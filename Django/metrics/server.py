"""What the WebSocket server itself counts (compat.uvicorn's protocol, in every worker)."""

from prometheus_client import Counter

SLOW_CLIENT_CLOSES = Counter(
    "realtime_slow_client_closes_total",
    "Sockets closed (4008) because their client stopped reading.",
)
