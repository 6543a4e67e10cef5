"""The status page's live figures (metrics/figures.py)."""

import pytest
from channels.testing import WebsocketCommunicator

from metrics import figures
from metrics.figures import FiguresConsumer
from realtime import metrics

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_quantile_is_prometheus_histogram_quantile():
    # 100 observations: 90 at most 10 ms, 9 more at most 50 ms, 1 past the last bucket.
    buckets = {0.01: 90.0, 0.05: 99.0, float("inf"): 100.0}
    assert figures.quantile(0.5, buckets) == pytest.approx(0.01 * 50 / 90)
    assert figures.quantile(0.95, buckets) == pytest.approx(0.01 + 0.04 * 5 / 9)
    assert figures.quantile(0.999, buckets) == 0.05  # in +Inf: the last finite bound
    assert figures.quantile(0.99, {0.01: 0.0, float("inf"): 0.0}) is None


def test_figures_are_what_changed_between_two_snapshots():
    before = {"sockets": 3.0, "deliveries": 100.0, "buckets": {0.01: 100.0, float("inf"): 100.0}}
    after = {"sockets": 5.0, "deliveries": 300.0, "buckets": {0.01: 300.0, float("inf"): 300.0}}
    assert figures.figures(before, after, 2.0) == {
        "sockets": 5,
        "messages_per_s": 100.0,
        "lag_p99_ms": pytest.approx(9.9),
    }


async def test_the_figures_socket_reports_deliveries_every_interval(monkeypatch):
    monkeypatch.setattr(FiguresConsumer, "interval", 0.2)
    comm = WebsocketCommunicator(FiguresConsumer.as_asgi(), "/ws/figures/")
    assert (await comm.connect())[0]
    quiet = await comm.receive_json_from(timeout=2)
    assert quiet["type"] == "figures"
    # The realtime base's sockets and deliveries (the figures socket is Channels' own).
    metrics.SOCKETS_OPEN.labels("talk").inc()
    lag = metrics.DELIVERY_LAG_SECONDS.labels("talk")
    for _ in range(10):
        lag.observe(0.004)
    frame = await comm.receive_json_from(timeout=2)
    metrics.SOCKETS_OPEN.labels("talk").dec()
    assert frame["sockets"] == quiet["sockets"] + 1
    # 10 deliveries in one interval (about 0.2 s: the rate is not asserted, only seen).
    assert frame["messages_per_s"] > 0
    assert 2.5 < frame["lag_p99_ms"] <= 5.0
    await comm.disconnect()


async def test_the_figures_socket_is_for_developers_only(settings):
    settings.DEBUG_ENDPOINTS = False
    comm = WebsocketCommunicator(FiguresConsumer.as_asgi(), "/ws/figures/")
    assert not (await comm.connect())[0]
