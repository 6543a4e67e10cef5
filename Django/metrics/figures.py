"""A few live figures for the development status page, from this replica's metrics."""

import asyncio
import math
import os
import time

from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings
from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector


def snapshot() -> dict:
    """Open sockets, deliveries so far and the delivery-lag histogram's buckets, summed
    over every worker of this replica (or this process, without multiprocess mode)."""
    registry = REGISTRY
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
    sockets, deliveries, buckets = 0.0, 0.0, {}
    for family in registry.collect():
        for sample in family.samples:
            if sample.name == "realtime_sockets_open":
                sockets += sample.value
            elif sample.name == "realtime_delivery_lag_seconds_count":
                deliveries += sample.value
            elif sample.name == "realtime_delivery_lag_seconds_bucket":
                bound = float(sample.labels["le"])
                buckets[bound] = buckets.get(bound, 0.0) + sample.value
    return {"sockets": sockets, "deliveries": deliveries, "buckets": buckets}


def quantile(q: float, buckets: dict[float, float]) -> float | None:
    """Prometheus' histogram_quantile on cumulative buckets: linear within the bucket."""
    bounds = sorted(buckets)
    if not bounds or buckets[bounds[-1]] <= 0:
        return None
    rank = q * buckets[bounds[-1]]
    lower, below = 0.0, 0.0
    for bound in bounds:
        count = buckets[bound]
        if count >= rank:
            if math.isinf(bound):
                return lower  # past the last finite bucket: its bound, as Prometheus says
            return lower + (bound - lower) * (rank - below) / max(count - below, 1e-12)
        lower, below = bound, count
    return lower


def figures(before: dict, after: dict, seconds: float) -> dict:
    """What changed between two snapshots `seconds` apart."""
    window = {
        bound: after["buckets"][bound] - before["buckets"].get(bound, 0.0)
        for bound in after["buckets"]
    }
    p99 = quantile(0.99, window)
    return {
        "sockets": int(after["sockets"]),
        "messages_per_s": round((after["deliveries"] - before["deliveries"]) / seconds, 1),
        "lag_p99_ms": None if p99 is None else round(p99 * 1000, 1),
    }


class FiguresConsumer(AsyncJsonWebsocketConsumer):
    """Sends the status page a few live figures of this replica every `interval`
    seconds: open sockets, messages delivered a second, delivery lag p99. For developers
    only (settings.DEBUG_ENDPOINTS)."""

    interval = 2.0

    async def connect(self):
        if not (settings.DEBUG_ENDPOINTS and settings.METRICS):
            await self.close()  # before accept(): the handshake gets 403
            return
        await self.accept()
        self.ticker = asyncio.create_task(self.tick())

    async def tick(self):
        before, at = await asyncio.to_thread(snapshot), time.monotonic()
        while True:
            await asyncio.sleep(self.interval)
            after, now = await asyncio.to_thread(snapshot), time.monotonic()
            await self.send_json({"type": "figures", **figures(before, after, now - at)})
            before, at = after, now

    async def websocket_disconnect(self, message):
        if hasattr(self, "ticker"):
            self.ticker.cancel()
        await super().websocket_disconnect(message)
