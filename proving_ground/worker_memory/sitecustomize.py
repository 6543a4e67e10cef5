"""Memory as each Gunicorn worker's allocators see it, for the soak's report.

`make soak` (natively) puts this directory on the django service's PYTHONPATH with
WORKER_MEMORY_DIR set; Python then imports this module at start-up, in the Gunicorn master
too, and every worker it forks writes `<pid>.json` to that directory every
WORKER_MEMORY_INTERVAL seconds. Without WORKER_MEMORY_DIR it does nothing. Nothing in
Django/ knows about it. With WORKER_MEMORY_COLLECT=1 (the soak's regression tests) a full
garbage collection comes before each sample: garbage that waits for the collector's rare
full pass is no leak, yet it can hold megabytes for minutes.

What it tells apart, in bytes:

- python_live: Python objects of up to 512 bytes (pymalloc's allocated blocks);
- python_held: pymalloc's arenas (1 MiB each), freed to the system only when empty;
- malloc_live / malloc_held: glibc malloc's bytes in use and what its heaps and mmapped
  chunks hold (larger Python objects, C libraries), from mallinfo2();
- live = python_live + malloc_live; held - live is free space the allocators keep
  (fragmentation); RSS - held is code, libraries and stacks.

With WORKER_TRACEMALLOC_DIR set (`make bench-memory`), each worker also traces its
allocations (tracemalloc, WORKER_TRACEMALLOC_FRAMES deep) and, when a file
`take-<name>` appears in that directory, writes its snapshot to `<pid>-<name>.snapshot`.
"""

import ctypes
import gc
import json
import os
import re
import sys
import tempfile
import threading
import time
import tracemalloc

_DIR = os.environ.get("WORKER_MEMORY_DIR")
_TRACE_DIR = os.environ.get("WORKER_TRACEMALLOC_DIR")
_TRACE_FRAMES = int(os.environ.get("WORKER_TRACEMALLOC_FRAMES", "30"))
_INTERVAL = float(os.environ.get("WORKER_MEMORY_INTERVAL", "2"))
_COLLECT = os.environ.get("WORKER_MEMORY_COLLECT") == "1"


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena", "ordblks", "smblks", "hblks", "hblkhd",
            "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost",
        )
    ]  # fmt: skip


def _mallinfo():
    libc = ctypes.CDLL(None)
    libc.mallinfo2.restype = _MallInfo2  # glibc 2.33+
    info = libc.mallinfo2()
    return {"malloc_live": info.uordblks + info.hblkhd, "malloc_held": info.arena + info.hblkhd}


def _pymalloc():
    # sys._debugmallocstats() writes to the C stderr only: read it through a file.
    with tempfile.TemporaryFile() as out:
        saved = os.dup(2)
        try:
            os.dup2(out.fileno(), 2)
            sys._debugmallocstats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        out.seek(0)
        text = out.read().decode()

    def field(name):
        return int(re.search(rf"^{name}\s*=\s*([\d,]+)", text, re.M)[1].replace(",", ""))

    return {
        "python_live": field("# bytes in allocated blocks"),
        "python_held": field("Total"),  # the arenas' total, the first "Total" line
    }


def _rss() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _report() -> None:
    path = os.path.join(_DIR, f"{os.getpid()}.json")
    while True:
        if _COLLECT:
            gc.collect()
        sample = {"t": time.time(), "rss": _rss(), **_pymalloc(), **_mallinfo()}
        with open(path + ".tmp", "w") as out:
            json.dump(sample, out)
        os.replace(path + ".tmp", path)
        time.sleep(_INTERVAL)


def _snapshots() -> None:
    taken = set()
    while True:
        for name in sorted(os.listdir(_TRACE_DIR)):
            if name.startswith("take-") and name not in taken:
                taken.add(name)
                gc.collect()  # what is garbage already is not the sockets'
                path = os.path.join(_TRACE_DIR, f"{os.getpid()}-{name[5:]}.snapshot")
                tracemalloc.take_snapshot().dump(path + ".tmp")
                os.replace(path + ".tmp", path)
        time.sleep(0.2)


def _in_gunicorn_worker() -> bool:
    return "gunicorn" in os.path.basename(sys.argv[0] if sys.argv else "")


def _in_worker() -> None:
    if _in_gunicorn_worker():
        threading.Thread(target=_report, name="worker-memory", daemon=True).start()


def _tracing_worker() -> None:
    if _in_gunicorn_worker():
        tracemalloc.start(_TRACE_FRAMES)
        threading.Thread(target=_snapshots, name="worker-tracemalloc", daemon=True).start()


if _DIR:
    os.register_at_fork(after_in_child=_in_worker)
if _TRACE_DIR:
    os.register_at_fork(after_in_child=_tracing_worker)
