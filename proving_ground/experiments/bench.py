"""Benchmarks of the native stack: HTTP, WebSocket echo and group broadcast, for our
configuration beside the book's and daphne's, on this machine.

    make bench          # quick mode (under 3 minutes)
    make bench-full     # longer runs and 1000 receivers, for publishing

Traffic goes to 127.0.0.1 only and every run is bounded in time. The load clients run
in several processes and report their own CPU, so a client-bound figure shows as such.
Results: printed, and written to bench-results/<time>/ as results.md, results.json and
PNG plots.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import functools
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from proving_ground import reports
from proving_ground.clients.load import BROADCAST_RATE, broadcast, wrk, ws_echo
from proving_ground.experiments.configs import (
    BENCH_ENV,
    CONFIGS,
    STOCK_DISPATCH,
    bare_stack,
    start_stack,
)
from proving_ground.experiments.measure import idle_memory, median_run, server_cpu
from proving_ground.reports import median_interval
from proving_ground.stacks.compose import ROOT
from proving_ground.stacks.native import (
    NativeStack,
    require_binaries,
)

MODES = {
    # For the test suite: proves the command end to end, measures nothing worth quoting.
    # runs: each figure is the median run of this many (two cores shared by client and
    # servers make single runs swing by a fifth).
    "smoke": {"seconds": 1, "runs": 1, "receivers": (10,), "messages": 5, "idle": 50},
    "quick": {"seconds": 1, "runs": 3, "receivers": (10, 100), "messages": 50, "idle": 1000},
    "full": {
        "seconds": 5,
        "runs": 3,
        "receivers": (10, 100, 1000),
        "messages": 100,
        "idle": 1000,
    },
}
# `--mode tune`: one setting changed from ours at a time, broadcast to 100 receivers.
TUNE_MESSAGES = 50
TUNE_SECONDS = 2
TUNE_RUNS = 3
TUNE_IDLE = 1000
TUNE_MEMORY = ("ours (2 workers)", "permessage-deflate on")
TUNE_VARIANTS = {
    "ours (2 workers)": {},
    "1 worker": {"WEB_CONCURRENCY": "1"},
    "3 workers": {"WEB_CONCURRENCY": "3"},
    "4 workers": {"WEB_CONCURRENCY": "4"},
    "Channels' DB cleanup per event": {"command": STOCK_DISPATCH},
    "permessage-deflate on": {"WS_PER_MESSAGE_DEFLATE": "1"},
    # uvicorn-worker's asyncio-loop, h11 variant (and Uvicorn's default WebSocket protocol).
    "asyncio loop + h11": {"GUNICORN_CMD_ARGS": "--worker-class uvicorn_worker.UvicornH11Worker"},
    "RedisPubSubChannelLayer": {"CHANNEL_LAYER": "pubsub"},
}
# Ten senders at once overrun the workers: what is dropped depends on the capacity.
CAPACITY_SENDERS = 10
CAPACITY_VARIANTS = (100, 1000)


@dataclass
class Row:
    config: str
    test: str
    target: str
    rate: float  # requests, round trips or deliveries a second
    p50_ms: float | None = None
    p99_ms: float | None = None
    client_cpu: float | None = None  # cores the load client used
    extra: dict = field(default_factory=dict)


# -- helpers -------------------------------------------------------------------------------


# -- HTTP with wrk ---------------------------------------------------------------------------


# -- WebSocket clients in several processes ----------------------------------------------


# -- group broadcast -------------------------------------------------------------------------


# -- memory --------------------------------------------------------------------------------


# -- running ---------------------------------------------------------------------------------


def broadcasts(stack: NativeStack, config: str, layer: str, settings: dict, add) -> None:
    """Latency at BROADCAST_RATE (one run: the sender sets the rate, and the percentiles
    come from every delivery), then throughput with the sender unthrottled."""
    for test, rate in ((f"broadcast@{BROADCAST_RATE}/s", BROADCAST_RATE), ("broadcast max", None)):
        for receivers in settings["receivers"]:
            result, notes = median_run(
                settings["runs"] if rate is None else 1,
                stack,
                broadcast,
                stack.http_url,
                stack.http_url,
                receivers,
                settings["messages"],
                rate,
            )
            deliveries, p50, p99, cores, dropped, spread = result
            extra = {"dropped": dropped, "sockets per worker": spread, "layer": layer, **notes}
            add(Row(config, f"{test} N={receivers}", "nginx", deliveries, p50, p99, cores, extra))


def tune(log=print) -> list[Row]:
    """One setting changed from ours at a time (worker count, Channels' per-event DB
    cleanup, compression, loop and parser, layer): WebSocket echo and broadcast to 100
    receivers, and idle memory where compression changes it; then the layer's capacity
    under ten senders."""
    rows: list[Row] = []

    def add(row: Row) -> None:
        rows.append(row)
        log(format_row(row))

    def measure(name: str, env: dict, senders: int = 1) -> None:
        # A swapped app shows as its module's name in the notes.
        shown = {
            k: v if k != "command" else "proving_ground.experiments.stock_dispatch"
            for k, v in env.items()
        }
        with start_stack("ours", env=env) as stack:
            if senders == 1:
                result, notes = median_run(
                    TUNE_RUNS, stack, ws_echo, stack.http_url, stack.http_url, TUNE_SECONDS
                )
                if name in TUNE_MEMORY:
                    notes["idle KiB per socket"] = round(idle_memory(stack, TUNE_IDLE), 1)
                add(Row(name, "ws echo", "nginx", *result, {"env": shown, **notes}))
            result, notes = median_run(
                TUNE_RUNS,
                stack,
                broadcast,
                stack.http_url,
                stack.http_url,
                100,
                TUNE_MESSAGES,
                None,
                senders,
            )
        deliveries, p50, p99, cores, dropped, spread = result
        test = "broadcast max N=100" + (f", {senders} senders" if senders > 1 else "")
        extra = {"dropped": dropped, "env": shown, **notes}
        add(Row(name, test, "nginx", deliveries, p50, p99, cores, extra))

    for name, env in TUNE_VARIANTS.items():
        measure(name, env)
    for capacity in CAPACITY_VARIANTS:
        measure(f"capacity {capacity}", {"CHANNEL_CAPACITY": str(capacity)}, CAPACITY_SENDERS)
    return rows


# `make bench-metrics`: rounds of each side (alternating which goes first), seconds of HTTP
# load a round, and broadcasts a round to 100 receivers. Sixteen rounds give the median
# of the rounds' ratios a 95% interval between the 4th and the 13th ratio; a broadcast of
# 300 runs a few seconds, where one of 100 (one second) moved by a fifth.
METRICS_ROUNDS = 16
# Side -> the side it is compared with, round by round.
METRICS_PAIRS = {"ours": "ours, metrics off", "ours, control": "ours"}
METRICS_SECONDS = 3
METRICS_MESSAGES = 300


def metrics_cost(log=print) -> list[Row]:
    """Ours with Prometheus metrics on, and off (METRICS=0, nothing else differs), and a
    control identical to ours: the stacks run at once and are measured in turn, each
    round in the other order, so that whatever else the machine does falls on all
    alike. Each figure is the median of the rounds: the throughput, and the Django
    processes' CPU time per request, round trip or delivery (for broadcasts including
    the 100 receivers' connects), which two cores shared with the load clients disturb
    less than throughput."""
    # The control is a second, identical stack with metrics on: how far it lands from
    # "ours" is how far two stacks that differ in nothing land apart on this machine.
    sides = {"ours": {}, "ours, metrics off": {"METRICS": "0"}, "ours, control": {}}
    deliveries = 100 * METRICS_MESSAGES
    tests = {
        "http /api/ping": (
            lambda stack: wrk(stack.http_url + "/api/ping", METRICS_SECONDS)[0],
            lambda rate: rate * METRICS_SECONDS,
        ),
        "ws echo": (
            lambda stack: ws_echo(stack.http_url, stack.http_url, METRICS_SECONDS)[0],
            lambda rate: rate * METRICS_SECONDS,
        ),
        "broadcast max N=100": (
            lambda stack: broadcast(stack.http_url, stack.http_url, 100, METRICS_MESSAGES, None)[0],
            lambda rate: deliveries,
        ),
    }
    measured = {side: {test: [] for test in tests} for side in sides}
    with contextlib.ExitStack() as running:
        stacks = {
            side: running.enter_context(start_stack("ours", env=env)) for side, env in sides.items()
        }
        for round_ in range(METRICS_ROUNDS):
            for side in list(sides)[:: 1 if round_ % 2 == 0 else -1]:
                stack = stacks[side]
                for test, (run, operations) in tests.items():
                    before = server_cpu(stack)["django"]
                    rate = run(stack)
                    used = server_cpu(stack)["django"] - before
                    measured[side][test].append((rate, used / operations(rate) * 1e6))
            log(f"round {round_ + 1} of {METRICS_ROUNDS} done")
    rows = []
    for side, results in measured.items():
        for test, runs in results.items():
            rate = statistics.median(r for r, _ in runs)
            row = Row(side, test, "nginx", rate)
            row.extra = {
                "runs": [round(r) for r, _ in runs],
                "django us per op": round(statistics.median(us for _, us in runs), 1),
            }
            if side in METRICS_PAIRS:
                # Each round's sides ran back to back: their ratio cancels what drifts on
                # the machine between rounds, which the medians above keep.
                pairs = zip(runs, measured[METRICS_PAIRS[side]][test], strict=True)
                row.extra["paired"] = [
                    (round(1 - on / off, 4), round(on_us / off_us - 1, 4))
                    for (on, on_us), (off, off_us) in pairs
                ]
            rows.append(row)
            log(format_row(row))
    return rows


# `--mode metrics`, second part: instructions per operation, counted by callgrind in the
# Django app driven in-process (instructions_probe.py), at two counts whose difference
# leaves out start-up. Counts are exact where seconds on a shared 2-core machine move by
# several points; the denominator lacks the server's HTTP parsing and socket I/O, so
# the share it gives is an upper bound of the share in a worker.
INSTRUCTION_COUNTS = {"http": (100, 600), "echo": (1000, 6000), "broadcast": (1000, 6000)}
INSTRUCTION_TESTS = {
    "http": "http /api/ping",
    "echo": "ws echo",
    "broadcast": "broadcast max N=100",
}


def _instructions(operation: str, metrics: str, count: int, redis: dict[str, str]) -> int:
    """Instructions callgrind counts for the probe's whole run."""
    with tempfile.TemporaryDirectory(dir="/dev/shm") as folder:
        out = Path(folder) / "callgrind.out"
        env = {
            **os.environ,
            **BENCH_ENV,
            **redis,
            "METRICS": metrics,
            "PROMETHEUS_MULTIPROC_DIR": folder,
            "PYTHONPATH": f"{ROOT / 'Django'}:{ROOT}",
        }
        done = subprocess.run(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"]
            + [
                sys.executable,
                "-m",
                "proving_ground.experiments.instructions_probe",
                operation,
                str(count),
            ],
            cwd=ROOT / "Django",
            env=env,
            capture_output=True,
            text=True,
            timeout=1800,
        )
        found = re.search(r"Collected : (\d+)", done.stderr)
        if done.returncode or not found:
            raise RuntimeError(f"callgrind {operation} {count}: {done.stderr[-2000:]}")
        return int(found.group(1))


def metrics_instructions(log=print) -> dict:
    """{test: {"on": instructions per operation, "off": ...}} (facts for the report)."""
    jobs = [
        (operation, metrics, count)
        for operation, counts in INSTRUCTION_COUNTS.items()
        for metrics in ("1", "0")
        for count in counts
    ]
    # The native stack's Redis for the probes' channel layer, its URL and password as
    # Django gets them; a database each, as probes running at once would share the echo
    # group.
    stack = NativeStack().start(("redis",))
    try:
        env = stack.django_env()
        base = env["REDIS_URL"].rsplit("/", 1)[0]
        redis = [
            {"REDIS_URL": f"{base}/{n}", "REDIS_PASSWORD": env.get("REDIS_PASSWORD", "")}
            for n in range(len(jobs))
        ]
        with concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
            counts = pool.map(lambda job, redis: _instructions(*job, redis), jobs, redis)
            counted = dict(zip(jobs, counts, strict=True))
    finally:
        stack.stop()
    figures = {}
    for operation, (low, high) in INSTRUCTION_COUNTS.items():
        test = figures[INSTRUCTION_TESTS[operation]] = {}
        for metrics, side in (("1", "on"), ("0", "off")):
            test[side] = round(
                (counted[operation, metrics, high] - counted[operation, metrics, low])
                / (high - low)
            )
        log(
            f"{INSTRUCTION_TESTS[operation]}: {test['on']:,} instructions per operation with"
            f" metrics on, {test['off']:,} off"
        )
    return figures


def run(mode: str, log=print) -> tuple[list[Row], dict]:
    settings = MODES[mode]
    seconds, runs = settings["seconds"], settings["runs"]
    rows: list[Row] = []
    facts: dict = {}

    def add(row: Row):
        rows.append(row)
        log(format_row(row))

    for config in CONFIGS:
        with start_stack(config) as stack:
            origin = stack.http_url
            if config == "ours":
                # First, on fresh workers: after the big broadcasts their allocators keep
                # freed memory, and new sockets reuse it without raising the RSS.
                facts["idle KiB per WebSocket"] = round(idle_memory(stack, settings["idle"]), 1)
                facts["idle sockets"] = settings["idle"]
            for target, base in (("nginx", stack.http_url), ("direct", stack.django_url)):
                result, notes = median_run(runs, stack, wrk, base + "/api/ping", seconds)
                add(Row(config, "http /api/ping", target, *result, notes))
            for target, base in (("nginx", stack.http_url), ("direct", stack.django_url)):
                result, notes = median_run(runs, stack, ws_echo, base, origin, seconds)
                add(Row(config, "ws echo", target, *result, notes))
            broadcasts(stack, config, "core", settings, add)
    for layer in ("pubsub", "fanout"):
        with start_stack("ours", layer=layer) as stack:
            broadcasts(stack, f"ours+{layer}", layer, settings, add)
    stack = bare_stack()
    try:
        result, notes = median_run(runs, stack, wrk, stack.django_url + "/", seconds)
        add(Row("bare ASGI", "http", "direct", *result, notes))
        result, notes = median_run(
            runs, stack, ws_echo, stack.django_url, stack.http_url, seconds, 20, True
        )
        add(Row("bare ASGI", "ws echo", "direct", *result, notes))
    finally:
        stack.stop()
    return rows, facts


# -- reporting -------------------------------------------------------------------------------


def _interval(values, spec: str) -> str:
    """The 95% interval of the median of `values`, or why there is none."""
    try:
        low, high = median_interval(list(values))
    except ValueError:
        return "too few rounds for a 95% interval"
    return f"95% interval of the median {low:{spec}} to {high:{spec}}"


def _ms(value):
    return "-" if value is None else f"{value:.1f}"


def _notes(row: Row) -> str:
    notes = []
    if "dropped" in row.extra:
        notes.append(f"dropped {row.extra['dropped']}")
    if "idle KiB per socket" in row.extra:
        notes.append(f"idle {row.extra['idle KiB per socket']} KiB/socket")
    if "django us per op" in row.extra:
        notes.append(
            f"Django {row.extra['django us per op']} us CPU per op; runs {row.extra['runs']}"
        )
    return ", ".join(notes)


def _cores(row: Row, key: str) -> str:
    value = row.client_cpu if key == "client" else row.extra.get(f"{key} cores")
    return "-" if value is None else f"{value:.2f}"


def format_row(row: Row) -> str:
    notes = _notes(row)
    extra = f"  {notes}" if notes else ""
    cores = "/".join(_cores(row, key) for key in ("client", "nginx", "django"))
    return (
        f"{row.config:<12} {row.test:<20} {row.target:<7} {row.rate:>10.0f}/s"
        f"  p50 {_ms(row.p50_ms):>7} ms  p99 {_ms(row.p99_ms):>7} ms"
        f"  cores client/nginx/django {cores}{extra}"
    )


def relay_share(row: Row) -> tuple[float, float, float] | None:
    """CPU microseconds nginx and Django spent per unit of `row.rate`, and nginx's share
    of the two: what nginx costs a server whose cores are all busy and whose clients run
    elsewhere. On a small machine that also runs the load client, the measured cost is
    higher: the client's CPU comes out of the same cores."""
    nginx, django = row.extra.get("nginx cores"), row.extra.get("django cores")
    if not (nginx and django and row.rate):
        return None
    nginx_us, django_us = nginx / row.rate * 1e6, django / row.rate * 1e6
    return nginx_us, django_us, nginx_us / (nginx_us + django_us)


def targets(rows: list[Row], facts: dict) -> list[str]:
    def find(config, test, target="nginx"):
        return next(
            (r for r in rows if (r.config, r.test, r.target) == (config, test, target)), None
        )

    lines = []
    ours, book = find("ours", "broadcast max N=100"), find("book", "broadcast max N=100")
    if ours and book:
        ratio = ours.rate / book.rate
        lines.append(
            f"broadcast max N=100: ours {ratio:.2f}x the book's deliveries/s (target >= 1.5x), "
            f"p99 {_ms(ours.p99_ms)} vs {_ms(book.p99_ms)} ms (target: lower)"
        )
    scaled = find("book, our workers", "broadcast max N=100")
    if ours and book and scaled:
        lines.append(
            f"  of which our worker count: the book's set-up {scaled.rate / book.rate:.2f}x with"
            f" our workers; and the rest: ours {ours.rate / scaled.rate:.2f}x that, at the same"
            " workers (differing in worker class settings, compression and the per-event DB"
            " clean-up)"
        )
    for test in ("http /api/ping", "ws echo"):
        proxied, direct = find("ours", test, "nginx"), find("ours", test, "direct")
        if proxied and direct:
            cost = 1 - proxied.rate / direct.rate
            line = f"{test}: nginx costs {cost:.0%} of direct throughput (target <= 15%)"
            share = relay_share(proxied)
            if share:
                nginx_us, django_us, floor = share
                line += (
                    f"; CPU per {'request' if test.startswith('http') else 'round trip'}:"
                    f" nginx {nginx_us:.0f} us, Django {django_us:.0f} us, so a server with"
                    f" every core busy and its clients elsewhere loses {floor:.0%} to nginx"
                )
            lines.append(line)
    for test in ("http /api/ping", "ws echo", "broadcast max N=100"):
        on, off = find("ours", test, "nginx"), find("ours, metrics off", test, "nginx")
        counted = facts.get("instructions per op", {}).get(test)
        if counted:
            lines.append(
                f"{test}: metrics on add {counted['on'] / counted['off'] - 1:.1%} to the"
                f" instructions per operation of Django's work ({counted['on']:,} vs"
                f" {counted['off']:,}; target <= 3%; counted by callgrind in-process, without"
                " the server's HTTP parsing and socket I/O, so an upper bound of the share in"
                " a worker)"
            )
        if on and off and on.extra.get("paired"):
            costs, cpus = zip(*on.extra["paired"], strict=True)
            cost = statistics.median(costs)
            lines.append(
                f"{test}: metrics on cost {cost:.1%} of the throughput with them off (target"
                f" <= 3%: {'met' if cost <= 0.03 else 'missed'}; the two stacks differ only"
                f" in METRICS=0; median of {len(costs)} rounds, each round's sides back to"
                f" back, {_interval(costs, '.1%')}, rounds from {min(costs):.1%} to"
                f" {max(costs):.1%}); Django CPU per operation {statistics.median(cpus):+.1%}"
                f" ({_interval(cpus, '+.1%')}; medians {on.extra['django us per op']:.0f} vs"
                f" {off.extra['django us per op']:.0f} us)"
            )
        control = find("ours, control", test, "nginx")
        if control and control.extra.get("paired"):
            costs, cpus = zip(*control.extra["paired"], strict=True)
            lines.append(
                f"  control: a second stack identical to ours lands {statistics.median(costs):.1%}"
                f" below it in throughput ({_interval(costs, '.1%')}, rounds from"
                f" {min(costs):.1%} to {max(costs):.1%}) and {statistics.median(cpus):+.1%} in"
                f" CPU per operation ({_interval(cpus, '+.1%')}): the noise of the line above"
            )
    steady = find("ours", f"broadcast@{BROADCAST_RATE}/s N=100")
    if steady:
        p99 = _ms(steady.p99_ms)
        lines.append(f"broadcast N=100 at {BROADCAST_RATE} msg/s: p99 {p99} ms (target < 50 ms)")
    if "idle KiB per WebSocket" in facts:
        lines.append(
            f"memory: {facts['idle KiB per WebSocket']} KiB worker RSS per idle WebSocket "
            f"(at {facts['idle sockets']} sockets)"
        )
    return lines


def markdown(rows: list[Row], facts: dict, info: dict, mode: str) -> str:
    header = ["config", "test", "via", "rate /s", "p50 ms", "p99 ms", "cores: client"]
    cells = [
        [row.config, row.test, row.target, f"{row.rate:.0f}", _ms(row.p50_ms), _ms(row.p99_ms)]
        + [_cores(row, key) for key in ("client", "nginx", "django")]
        + [_notes(row)]
        for row in rows
    ]
    out = [
        *reports.heading(f"Benchmark ({mode} mode)", info),
        "",
        *reports.table([*header, "nginx", "django", "notes"], cells, "lllrrrrrrl"),
    ]
    goals = targets(rows, facts)
    if goals:
        out += ["", "Targets:", ""] + [f"- {line}" for line in goals]
    out += ["", *reports.versions(info, servers=True), ""]
    return "\n".join(out)


def plots(rows: list[Row], folder: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    for test, filename in (("http /api/ping", "http.png"), ("ws echo", "ws_echo.png")):
        chosen = [r for r in rows if r.test == test or (r.config == "bare ASGI" and r.test in test)]
        if not chosen:
            continue
        fig, ax = plt.subplots(figsize=(7, 3.5))
        ax.barh([f"{r.config} ({r.target})" for r in chosen], [r.rate for r in chosen])
        ax.set_xlabel("per second")
        ax.set_title(f"{test}: throughput")
        fig.tight_layout()
        fig.savefig(folder / filename)
        plt.close(fig)
        written.append(folder / filename)
    broadcast_rows = [r for r in rows if r.test.startswith("broadcast max")]
    if broadcast_rows:
        fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.5))
        for config in dict.fromkeys(r.config for r in broadcast_rows):
            mine = [r for r in broadcast_rows if r.config == config]
            n = [int(r.test.split("=")[1]) for r in mine]
            left.plot(n, [r.rate for r in mine], marker="o", label=config)
            right.plot(n, [r.p99_ms for r in mine], marker="o", label=config)
        for ax, label in ((left, "deliveries/s"), (right, "p99 latency ms")):
            ax.set_xscale("log")
            ax.set_xlabel("receivers")
            ax.set_ylabel(label)
            ax.legend()
        fig.suptitle("group broadcast, one unthrottled sender")
        fig.tight_layout()
        fig.savefig(folder / "broadcast.png")
        plt.close(fig)
        written.append(folder / "broadcast.png")
    return written


def tune_plot(rows: list[Row], folder: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=False)
    for ax, test, label in (
        (axes[0], "ws echo", "echo round trips/s"),
        (axes[1], "broadcast", "broadcast deliveries/s"),
    ):
        chosen = [r for r in rows if r.test.startswith(test)]
        ax.barh(
            [r.config + (", 10 senders" if "senders" in r.test else "") for r in chosen],
            [r.rate for r in chosen],
        )
        ax.invert_yaxis()
        ax.set_xlabel(f"{label} (median of {TUNE_RUNS})")
    fig.suptitle("one change from ours at a time (through nginx, 100 receivers)")
    fig.tight_layout()
    fig.savefig(folder / "tune.png")
    plt.close(fig)
    return folder / "tune.png"


def main() -> int:
    parser = reports.parser(__doc__, modes=[*MODES, "tune", "metrics"], out="bench-results")
    parser.epilog = (
        "tune: the sweep the stack's defaults were chosen from (about 8 minutes);"
        " metrics: what Prometheus metrics cost (about 30 minutes)"
    )
    args = parser.parse_args()
    require_binaries({"wrk": "wrk"})  # the HTTP load client
    if args.mode == "metrics":
        require_binaries({"valgrind": "valgrind"})  # counts instructions
    info = reports.machine()
    reports.show_machine(info)
    started = time.monotonic()
    if args.mode == "tune":
        rows, facts = tune(), {}
    elif args.mode == "metrics":
        rows, facts = metrics_cost(), {"instructions per op": metrics_instructions()}
    else:
        rows, facts = run(args.mode)
    report = markdown(rows, facts, info, args.mode)
    data = {"machine": info, "facts": facts, "rows": [asdict(r) for r in rows]}
    plot = {"tune": tune_plot, "metrics": None}.get(args.mode, plots)
    figures = functools.partial(plot, rows) if plot else None
    print()
    reports.publish(args.out, "results", report, data, started, figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
