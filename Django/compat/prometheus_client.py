"""prometheus-client: a dead worker's files folded into an archive, and a histogram's
buckets added to at once.

Upstream: prometheus/client_python#275 (open), a dead process's files are never compacted;
remove fold_dead_worker once it is fixed. add_observations has no upstream issue: a
histogram child takes one observation at a time, each a write to the shared file in
multiprocess mode; remove it if prometheus-client gains a way to add many at once.
"""

import os

from prometheus_client.mmap_dict import MmapedDict

# The version this module was written against and tested with (tests/compat).
UPSTREAM = ("prometheus-client", "0.26.0")


def histogram_bounds(child) -> list[float]:
    """A histogram child's bucket upper bounds, +Inf last (private: _upper_bounds)."""
    return list(child._upper_bounds)


def add_observations(child, bucket_counts: dict[int, float], total: float) -> None:
    """Add counts to a histogram child's buckets (by index) and `total` to its sum at
    once, where observe() would write each observation to the shared file (private:
    _buckets, _sum)."""
    for index, count in bucket_counts.items():
        child._buckets[index].inc(count)
    if total:
        child._sum.inc(total)


# Files of these types are summed over processes, so a dead worker's values can be added
# to an archive file that prometheus-client reads like any worker's ("<type>_<name>.db").
FOLDED_TYPES = ("counter", "histogram")
ARCHIVE = "archive"


def fold_dead_worker(directory: str, pid: int) -> None:
    """Add a dead worker's counters and histograms to the archive files and delete its
    own. Run by Gunicorn's master (child_exit), one worker at a time."""
    for kind in FOLDED_TYPES:
        dead = os.path.join(directory, f"{kind}_{pid}.db")
        if not os.path.exists(dead):
            continue
        archive = MmapedDict(os.path.join(directory, f"{kind}_{ARCHIVE}.db"))
        try:
            for key, value, timestamp, _ in MmapedDict.read_all_values_from_file(dead):
                archived, _ = archive.read_value(key)
                archive.write_value(key, archived + value, timestamp)
        finally:
            archive.close()
        os.remove(dead)
