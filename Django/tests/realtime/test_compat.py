"""realtime.compat reaches into channels-redis and Uvicorn internals: these fail when
either changes under it. The defects themselves are shown against real Redis and real
servers in ../proving_ground/tests (test_channel_layers.py, test_hostile.py)."""

import inspect
import os
import subprocess
import sys
from importlib.metadata import version

import pytest
from channels_redis.core import RedisChannelLayer as UpstreamLayer
from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from realtime import compat


@pytest.mark.parametrize("package", sorted(compat.UPSTREAM))
def test_installed_versions_are_the_ones_the_workarounds_were_written_for(package):
    assert version(package) == compat.UPSTREAM[package], (
        f"{package} changed: re-run the tests named in realtime/compat.py, drop what upstream"
        " fixed, then update UPSTREAM"
    )


def test_the_channels_redis_internals_used_are_there():
    layer = UpstreamLayer(hosts=["redis://127.0.0.1:1/0"])
    assert isinstance(layer.receive_buffer.default_factory(), object)
    assert layer._group_key("room").endswith(b"room")
    assert layer.consistent_hash("room") == 0
    for name in ("receive_single", "_brpop_with_clean", "create_pool", "connection"):
        assert callable(getattr(layer, name)), name
    assert "channel" in inspect.signature(UpstreamLayer._brpop_with_clean).parameters


def test_uvicorn_still_closes_at_once_after_a_protocol_error():
    # The defect WebSocketProtocol works around: upstream closes the transport
    # straight after its close frame. If this line is gone, re-check test_hostile.py
    # without the subclass.
    source = inspect.getsource(WebSocketsSansIOProtocol.handle_parser_exception)
    assert "self.transport.close()" in source


async def test_a_receive_reaches_redis_through_the_subclass():
    # Nothing listens on port 1: the subclass's pop still goes to Redis, and fails there.
    layer = compat.RedisChannelLayer(hosts=[{"address": "redis://127.0.0.1:1/0"}])
    channel = await layer.new_channel()
    with pytest.raises(Exception, match="Connect|connect"):
        await layer.receive(channel)


def test_uvicorns_slow_client_internals_are_still_there():
    # WebSocketProtocol's slow-client close replaces keepalive_timeout and waits on the
    # private `writable` event that send() waits on.
    assert "self.conn.fail(1011" in inspect.getsource(WebSocketsSansIOProtocol.keepalive_timeout)
    assert "await self.writable.wait()" in inspect.getsource(WebSocketsSansIOProtocol.send)
    init = inspect.getsource(WebSocketsSansIOProtocol.__init__)
    assert "self.pong_timer" in init and "self.close_timeout" in init


COUNTING = """
from prometheus_client import Counter, Histogram
Counter("folded_total", "a counter", ["route"]).labels("talk").inc({n})
Histogram("folded_seconds", "a histogram", buckets=(1.0,)).observe(0.5)
"""


def test_a_dead_workers_figures_are_folded_into_the_archive(tmp_path, monkeypatch):
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    env = {**os.environ}

    def totals():
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=str(tmp_path))
        return {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in registry.collect()
            for s in family.samples
        }

    for n in (2, 3, 5):  # three workers, each dead in turn
        subprocess.run([sys.executable, "-c", COUNTING.format(n=n)], env=env, check=True)
    pids = sorted(int(f.stem.split("_")[1]) for f in tmp_path.glob("counter_*.db"))
    before = totals()
    for pid in pids:
        compat.fold_dead_worker(str(tmp_path), pid)
    assert sorted(f.name for f in tmp_path.iterdir()) == [
        "counter_archive.db",
        "histogram_archive.db",
    ]
    assert totals() == before
    assert before[("folded_total", (("route", "talk"),))] == 10
    assert before[("folded_seconds_count", ())] == 3


def test_the_prometheus_client_internals_used_are_there():
    from prometheus_client import Histogram

    child = Histogram("internals_seconds", "x", buckets=(1.0,), registry=None)
    assert child._upper_bounds == [1.0, float("inf")]
    assert len(child._buckets) == 2
    for value in (*child._buckets, child._sum):
        assert callable(value.inc)
