"""Counts kept in the worker and added to the metrics once a second (metrics/tally.py)."""

import pytest
from prometheus_client import Counter, Histogram

from metrics import tally as metrics


def test_tallies_reach_the_metrics_when_flushed():
    counter = Counter("tally_test_total", "a counter", registry=None)
    histogram = Histogram("tally_test_seconds", "a histogram", buckets=(0.01, 1.0), registry=None)
    tally, lag = metrics.Tally(counter), metrics.TallyHistogram(histogram)
    for amount in (0.001, 0.01, 0.5, 3.0):
        tally.inc(2)
        lag.observe(amount)
    assert counter._value.get() == 0  # kept in the worker until flushed
    tally.flush()
    lag.flush()
    lag.flush()  # nothing new: nothing added twice
    assert counter._value.get() == 8
    samples = {(s.name, s.labels.get("le")): s.value for s in histogram.collect()[0].samples}
    assert samples[("tally_test_seconds_bucket", "0.01")] == 2  # le is inclusive
    assert samples[("tally_test_seconds_bucket", "1.0")] == 3
    assert (
        samples[("tally_test_seconds_bucket", "+Inf")]
        == samples[("tally_test_seconds_count", None)]
        == 4
    )
    assert samples[("tally_test_seconds_sum", None)] == pytest.approx(3.511)
