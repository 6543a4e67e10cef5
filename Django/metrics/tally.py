"""Counting in the worker, added to the Prometheus metrics once a second.

Under Gunicorn each worker is a process of its own: prometheus-client's multiprocess mode
(PROMETHEUS_MULTIPROC_DIR, set and emptied by entrypoint.sh) lets one scrape of /metrics
add up every worker's figures, but each inc() there takes a lock, a getpid() and a write
to a shared file: per frame or per request that cost a tenth of the throughput (make
bench-metrics). What moves that often is tallied here instead (Tally, TallyHistogram) and
added once a second by a thread of the worker's; a scrape may miss the last second's
counts, never more.
"""

import atexit
import bisect
import os
import threading
import time

from prometheus_client import Counter, Histogram

from compat.prometheus_client import add_observations, histogram_bounds

# How often the tallies are added to the metrics.
FLUSH_INTERVAL = 1.0


class Tally:
    """A counter's increments, kept here and added to `child` by flush()."""

    __slots__ = ("child", "count", "flushed")

    def __init__(self, child) -> None:
        self.child, self.count, self.flushed = child, 0, 0

    def inc(self, amount: float = 1) -> None:
        self.count += amount

    def flush(self) -> None:
        # Only the event loop adds to count; reading it is atomic, so none is lost.
        count = self.count
        if count != self.flushed:
            self.child.inc(count - self.flushed)
            self.flushed = count


class TallyHistogram:
    """A histogram's observations, counted per bucket here and added by flush() to the
    child's buckets and sum at once (compat.prometheus_client)."""

    __slots__ = ("child", "bounds", "counts", "flushed", "sum", "flushed_sum")

    def __init__(self, child) -> None:
        self.child = child
        self.bounds = histogram_bounds(child)
        self.counts = [0] * len(self.bounds)
        self.flushed = [0] * len(self.bounds)
        self.sum = self.flushed_sum = 0.0

    def observe(self, amount: float, count: int = 1) -> None:
        """`count` observations of `amount` (a fan-out's sockets, at once)."""
        self.counts[bisect.bisect_left(self.bounds, amount)] += count
        self.sum += amount * count

    def flush(self) -> None:
        added = {
            i: count - self.flushed[i]
            for i, count in enumerate(self.counts)
            if count != self.flushed[i]
        }
        total = self.sum
        add_observations(self.child, added, total - self.flushed_sum)
        for i in added:
            self.flushed[i] = self.counts[i]
        self.flushed_sum = total


_tallies: list = []
_flusher_pid = None


def tallied(tally):
    """Register `tally` with this process's flusher thread (started on first use, and
    again in a forked child)."""
    global _flusher_pid
    _tallies.append(tally)
    if _flusher_pid != os.getpid():
        _flusher_pid = os.getpid()
        threading.Thread(target=_flush_forever, name="metrics-flush", daemon=True).start()
        atexit.register(flush)  # a worker stopping (SIGTERM) loses none
    return tally


def _flush_forever() -> None:
    while True:
        time.sleep(FLUSH_INTERVAL)
        flush()


def flush() -> None:
    for tally in list(_tallies):
        tally.flush()


def tally(child):
    """A tallying stand-in for a counter's or histogram's child (others as they are)."""
    if isinstance(child, Counter):
        return tallied(Tally(child))
    if isinstance(child, Histogram):
        return tallied(TallyHistogram(child))
    return child
