"""Where an idle WebSocket's worker memory goes: `make bench-memory`.

    python -m proving_ground bench-memory [--mode smoke|quick] [--out DIR]

For each channel layer in LAYERS (channels-redis's core layer, CHANNEL_LAYER=core, and the
stack's own), two runs of the native stack (two Gunicorn workers), each holding idle
sockets on /ws/echo/ straight to Gunicorn, as `make bench` measures idle memory:

1. worker RSS per socket, nothing traced (the figure `make bench` prints);
2. with tracemalloc in each worker (proving_ground/worker_memory/sitecustomize.py): the
   bytes allocated for the sockets (a snapshot with them open, less one taken before,
   after a warm-up), each allocation put down to who asked for it: the innermost frame
   of its traceback in an installed package (uvicorn, websockets, channels, ...) or in
   the stack's own code under Django/ (by module). An asyncio.Queue that Uvicorn makes
   counts as Uvicorn's.

The report ends with what the stack's own layer takes away per socket, by owner.

Tracing covers Python's allocators only (pymalloc and PyMem_Raw, where C extensions
allocate too); RSS also holds the allocators' free space. Nothing in Django/ knows about
this.
"""

from __future__ import annotations

import collections
import os
import sys
import tempfile
import time
import tracemalloc
from dataclasses import asdict, dataclass
from pathlib import Path

from proving_ground import reports
from proving_ground.experiments.configs import start_stack
from proving_ground.experiments.measure import idle_memory
from proving_ground.experiments.soak import WORKER_MEMORY
from proving_ground.stacks.compose import ROOT

# The layers side by side: channels-redis's core layer, then the stack's own (the default).
LAYERS = ("core", "fanout")
MODES = {
    # For the test suite: proves the command end to end.
    "smoke": {"sockets": 100},
    "quick": {"sockets": 1000},
}
# Sockets opened and closed before the first snapshot: imports, caches and pools that the
# first sockets fill are not what each socket costs.
WARM_UP = 20
# Allocation sites listed under the table.
TOP_SITES = 15
# Where the stack's own code is, as the workers see it (they run from Django/).
STACK_CODE = str(ROOT / "Django") + os.sep
SITE_PACKAGES = f"site-packages{os.sep}"
NO_PACKAGE = "Python itself (no package frame)"


@dataclass
class Breakdown:
    layer: str
    sockets: int
    rss_kib: float  # worker RSS per socket, untraced
    traced_kib: float  # traced bytes per socket
    owners: dict[str, float]  # KiB per socket, by who asked
    sites: list[tuple[str, float, float]]  # (site, bytes per socket, blocks per socket)

    @property
    def own_kib(self) -> float:
        return sum(kib for owner, kib in self.owners.items() if is_stack_code(owner))


def is_stack_code(owner: str) -> bool:
    return owner.endswith(".py")


def owner_of(traceback: tracemalloc.Traceback) -> tuple[str, str]:
    """(owner, site) of an allocation: the innermost frame in a package or the stack's
    code; its site is that frame, and the innermost frame where it differs."""
    frames = list(traceback)[::-1]  # tracemalloc lists the oldest first
    for frame in frames:
        name = frame.filename
        if name.startswith(STACK_CODE):
            owner = name.removeprefix(STACK_CODE)
            site = f"{owner}:{frame.lineno}"
            break
        if SITE_PACKAGES in name:
            site = f"{name.rsplit(SITE_PACKAGES, 1)[1]}:{frame.lineno}"
            owner = site.split(os.sep, 1)[0].removesuffix(f":{frame.lineno}")
            break
    else:
        owner = NO_PACKAGE
        site = f"{frames[0].filename}:{frames[0].lineno}"
    if frame is not frames[0] and owner != NO_PACKAGE:
        site += f" -> {Path(frames[0].filename).name}:{frames[0].lineno}"
    return owner, site


def breakdown(folder: Path, workers: list[int], sockets: int) -> tuple[dict, list]:
    owners: collections.Counter = collections.Counter()
    sites: collections.Counter = collections.Counter()
    blocks: collections.Counter = collections.Counter()
    for pid in workers:
        before = tracemalloc.Snapshot.load(str(folder / f"{pid}-before.snapshot"))
        after = tracemalloc.Snapshot.load(str(folder / f"{pid}-open.snapshot"))
        for stat in after.compare_to(before, "traceback"):
            owner, site = owner_of(stat.traceback)
            owners[owner] += stat.size_diff
            sites[site] += stat.size_diff
            blocks[site] += stat.count_diff
    per_socket = {owner: size / sockets / 1024 for owner, size in owners.most_common()}
    top = [(site, size / sockets, blocks[site] / sockets) for site, size in sites.most_common()]
    return per_socket, top[:TOP_SITES]


def snapshot(folder: Path, name: str, workers: list[int], timeout: float = 120) -> None:
    (folder / f"take-{name}").touch()
    deadline = time.monotonic() + timeout
    while not all((folder / f"{pid}-{name}.snapshot").exists() for pid in workers):
        if time.monotonic() > deadline:
            raise RuntimeError(f"workers {workers} wrote no {name!r} snapshot in {timeout}s")
        time.sleep(0.2)


def measure(sockets: int, layer: str) -> Breakdown:
    with start_stack("ours", layer=layer) as stack:
        rss = idle_memory(stack, sockets)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        env = {"PYTHONPATH": str(WORKER_MEMORY), "WORKER_TRACEMALLOC_DIR": tmp}
        with start_stack("ours", layer=layer, env=env) as stack:
            workers = stack.gunicorn_workers()
            idle_memory(stack, WARM_UP)
            snapshot(folder, "before", workers)
            idle_memory(stack, sockets, lambda: snapshot(folder, "open", workers))
        owners, sites = breakdown(folder, workers, sockets)
    return Breakdown(layer, sockets, rss, sum(owners.values()), owners, sites)


def markdown(results: list[Breakdown], mode: str) -> str:
    first = results[0]
    lines = [f"# Memory per idle WebSocket ({mode}: {first.sockets} sockets, two workers)", ""]
    for result in results:
        lines += [f"## Layer: {result.layer}", "", *section(result), ""]
    base, own = results[0], results[-1]
    lines += [
        f"## What the {own.layer} layer takes away per socket, against {base.layer}",
        "",
        f"- worker RSS: {base.rss_kib - own.rss_kib:.1f} KiB"
        f" ({base.rss_kib:.1f} to {own.rss_kib:.1f})",
        f"- traced: {base.traced_kib - own.traced_kib:.1f} KiB"
        f" ({base.traced_kib:.1f} to {own.traced_kib:.1f})",
        "",
    ]
    rows = []
    for owner in dict.fromkeys([*base.owners, *own.owners]):
        before, after = base.owners.get(owner, 0.0), own.owners.get(owner, 0.0)
        if max(abs(before), abs(after)) >= 0.05:
            rows.append([owner, f"{before:.2f}", f"{after:.2f}", f"{before - after:.2f}"])
    header = ["who asked for it", base.layer, own.layer, "taken away"]
    return "\n".join(lines + reports.table(header, rows, "lrrr")) + "\n"


def section(result: Breakdown) -> list[str]:
    lines = [
        f"- worker RSS per socket, untraced: **{result.rss_kib:.1f} KiB**",
        f"- traced Python allocations per socket: **{result.traced_kib:.1f} KiB**, of which"
        f" the stack's own code (Django/): {result.own_kib:.1f} KiB",
        "",
    ]
    owners = [
        [f"Django/{owner} (the stack's)" if is_stack_code(owner) else owner]
        + [f"{kib:.2f}", f"{kib / result.traced_kib:.0%}"]
        for owner, kib in result.owners.items()
        if abs(kib) >= 0.05
    ]
    lines += reports.table(["who asked for it", "KiB per socket", "share"], owners, "lrr")
    lines += [
        "",
        f"Top {TOP_SITES} allocation sites (the innermost package frame; after the arrow,"
        " the innermost frame, where that is the standard library):",
        "",
    ]
    sites = [[f"`{site}`", f"{size:.0f}", f"{count:.1f}"] for site, size, count in result.sites]
    lines += reports.table(["site", "bytes per socket", "blocks per socket"], sites, "lrr")
    return lines


def main() -> int:
    args = reports.parser(__doc__, MODES, out="bench-results").parse_args()
    started = time.monotonic()
    results = [measure(MODES[args.mode]["sockets"], layer) for layer in LAYERS]
    report = markdown(results, args.mode)
    data = {result.layer: asdict(result) for result in results}
    reports.publish(args.out, "memory", report, data, started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
