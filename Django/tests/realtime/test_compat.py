"""realtime.compat reaches into redis-py, Uvicorn and prometheus-client internals: these
fail when one changes under it. The defects themselves are shown against real Redis and
real servers in ../proving_ground/tests (test_channel_layers.py, test_hostile.py)."""

import inspect
import os
import subprocess
import sys
from importlib.metadata import version

import pytest
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


async def test_the_redis_py_pool_internals_used_are_there():
    # IdleClosingConnectionPool takes idle connections out under the pool's own lock.
    pool = compat.IdleClosingConnectionPool.from_url("redis://127.0.0.1:1/0")
    assert pool._available_connections == []
    async with pool._lock:
        pass
    await pool.close_idle()
    await pool.disconnect()


def test_uvicorn_still_closes_at_once_after_a_protocol_error():
    # The defect WebSocketProtocol works around: upstream closes the transport
    # straight after its close frame. If this line is gone, re-check test_hostile.py
    # without the subclass.
    source = inspect.getsource(WebSocketsSansIOProtocol.handle_parser_exception)
    assert "self.transport.close()" in source


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
