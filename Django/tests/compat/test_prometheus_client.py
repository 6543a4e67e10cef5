"""compat.prometheus_client reaches into prometheus-client's histogram children and its
multiprocess files."""

import os
import subprocess
import sys

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.multiprocess import MultiProcessCollector

from compat import prometheus_client as compat_prometheus

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
        compat_prometheus.fold_dead_worker(str(tmp_path), pid)
    assert sorted(f.name for f in tmp_path.iterdir()) == [
        "counter_archive.db",
        "histogram_archive.db",
    ]
    assert totals() == before
    assert before[("folded_total", (("route", "talk"),))] == 10
    assert before[("folded_seconds_count", ())] == 3


def test_the_prometheus_client_internals_used_are_there():
    child = Histogram("internals_seconds", "x", buckets=(1.0,), registry=None)
    assert child._upper_bounds == [1.0, float("inf")]
    assert len(child._buckets) == 2
    for value in (*child._buckets, child._sum):
        assert callable(value.inc)


def test_observations_added_at_once_read_as_observed_one_by_one():
    one_by_one = Histogram("one_by_one_seconds", "x", buckets=(0.1, 1.0), registry=None)
    at_once = Histogram("at_once_seconds", "x", buckets=(0.1, 1.0), registry=None)
    for amount in (0.05, 0.5, 0.5, 5.0):
        one_by_one.observe(amount)
    assert compat_prometheus.histogram_bounds(at_once) == [0.1, 1.0, float("inf")]
    compat_prometheus.add_observations(at_once, {0: 1, 1: 2, 2: 1}, 6.05)

    def values(histogram):  # without _created, the time each was made
        samples = histogram.collect()[0].samples
        return [(s.labels, s.value) for s in samples if not s.name.endswith("_created")]

    assert values(at_once) == values(one_by_one)
