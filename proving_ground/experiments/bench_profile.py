"""Where the workers' CPU goes during a broadcast: `make bench-profile`.

    python -m proving_ground bench-profile [--mode smoke|quick] [--out DIR]

Two native stacks run at once: the stack as shipped, and the same with METRICS=0. py-spy
samples each Gunicorn worker while the load of `make bench` runs through nginx, and puts
each sample down to the innermost Python frame running (its "self" time): by package, or
the stack's own code under Django/ by package, and by function. Two parts:

1. **Broadcast latency**, on the stack as shipped: one sender at 50 messages
   a second to 100 receivers, as `make bench` measures p99: first unprofiled (the p99
   to quote), then profiled (its p99 too, to show what sampling costs), with the CPU
   per delivery and where it goes.
2. **What metrics cost**: the unthrottled broadcast of `make bench-metrics` on
   both stacks (nothing else differs), in alternating rounds;
   CPU per delivery by package and function on each side, and the difference.

Samples are taken only while a thread holds the GIL (`--gil`), so a worker waiting on
its sockets or a thread sleeping counts nothing; C code run while holding the GIL (uvloop
writing to a socket, the JSON encoder) counts as the Python function that called it. The
event loop's own C work (uvloop polling and running callbacks) shows as asyncio's
`Runner.run`. py-spy reads the workers' memory from outside (`--nonblocking`: without
pausing them) and takes CPU of its own, so the profiled run is a little slower.
"""

from __future__ import annotations

import collections
import contextlib
import importlib.util
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import websockets

from proving_ground import reports
from proving_ground.clients import load, ws_url
from proving_ground.clients.load import BROADCAST_RATE
from proving_ground.experiments import measure
from proving_ground.experiments.configs import start_stack
from proving_ground.stacks.compose import ROOT
from proving_ground.stacks.native import StackError

MODES = {
    # For the test suite: proves the command end to end. Its windows hold 0.05 to 0.1 s of
    # the workers' CPU (200 to 500 deliveries), which 100 samples a second cover with 5 to
    # 10 samples: at 1000 a second, 50 or more, and the odds that a window gets none are
    # at most e**-50 (Poisson; py-spy's evenly spaced samples vary less than that).
    "smoke": {
        "receivers": 10,
        "messages": 50,
        "max_messages": 20,
        "rounds": 1,
        "samples_a_second": 1000,
    },
    "quick": {
        "receivers": 100,
        "messages": 250,
        "max_messages": 150,
        "rounds": 6,
        "samples_a_second": 100,
    },
}
# The stack's own code: the folders and modules of Django/ (a sample's file is shown
# relative to its sys.path entry, as "realtime/consumers.py" or "gunicorn.conf.py").
STACK_PACKAGES = {
    path.name.removesuffix(".py")
    for path in (ROOT / "Django").iterdir()
    if path.is_dir() or path.suffix == ".py"
}
# Files Python names in angle brackets for code it runs: frozen modules, and code made
# with exec (dataclasses' and namedtuples' methods, as "<string>").
PYTHON_PSEUDO_FILES = re.compile(r"<(frozen [\w.]+|string)>")
TOP_FUNCTIONS = 20
FRAME = re.compile(r"(?P<function>.*) \((?P<file>.*?):(?P<line>\d+)\)$")


@dataclass
class Profile:
    """Samples of the workers' CPU, and the deliveries they were taken over."""

    samples: int = 0
    workers: list = field(default_factory=list)  # each py-spy run's samples: one per worker
    deliveries: int = 0
    cpu_s: float = 0.0  # the Django processes' CPU time over the same window (psutil)
    owners: collections.Counter = field(default_factory=collections.Counter)
    functions: collections.Counter = field(default_factory=collections.Counter)
    rounds_us: list = field(default_factory=list)  # each broadcast's CPU per delivery
    handshake_ms: list = field(default_factory=list)  # CPU per handshake, round by round

    def add(self, other: Profile) -> None:
        self.samples += other.samples
        self.workers += other.workers
        self.deliveries += other.deliveries
        self.cpu_s += other.cpu_s
        self.rounds_us += other.rounds_us
        self.handshake_ms += other.handshake_ms
        self.owners.update(other.owners)
        self.functions.update(other.functions)

    def us_per_delivery(self, samples: int) -> float:
        """The CPU time per delivery that `samples` of this profile's stand for: their
        share of the samples, of the CPU time measured. (A sample is a thread holding
        the GIL, also while the kernel has the process waiting for a core: on a busy
        machine the samples outnumber the CPU time, alike for every function.)"""
        return samples / max(self.samples, 1) * self.cpu_s / max(self.deliveries, 1) * 1e6


# A sample whose file is no file: --nonblocking reads a worker's memory while it runs, so
# now and then a frame's strings are read as they change (one sample in a few hundred
# seen, such as "x-forwarded-proto" for a file name). Shown as such, never attributed.
UNREADABLE = "(unreadable: read while it changed)"


def owner_of(file: str) -> str:
    """Who a sample's innermost frame belongs to: a package, the stack's code, Python."""
    if not (file.endswith(".py") or PYTHON_PSEUDO_FILES.fullmatch(file)):
        return UNREADABLE
    top = file.split("/", 1)[0].removesuffix(".py")
    if top in STACK_PACKAGES:
        return f"Django/{top} (the stack's)"
    return top


def is_known(owner: str) -> bool:
    """Whether `owner` names code the workers run: the stack's, a module importable here
    (the workers run from this virtualenv), or one of Python's frozen modules. A frame
    py-spy could not name, or a file not shown relative to its sys.path entry, is not."""
    if owner.endswith("(the stack's)") or PYTHON_PSEUDO_FILES.fullmatch(owner):
        return True
    try:
        return bool(owner.isidentifier() and importlib.util.find_spec(owner))
    except (ImportError, ValueError):
        return False


def parse(raw: str) -> Profile:
    """One py-spy run's raw output (one worker's): one line per distinct stack,
    `frame;frame;... count`."""
    profile = Profile(workers=[0])
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        leaf = stack.rsplit(";", 1)[-1]
        found = FRAME.match(leaf)
        function, file = (found["function"], found["file"]) if found else (leaf, leaf)
        profile.samples += int(count)
        profile.workers[0] += int(count)
        profile.owners[owner_of(file)] += int(count)
        profile.functions[f"{function} ({file})"] += int(count)
    return profile


def py_spy() -> str:
    path = Path(sys.prefix) / "bin" / "py-spy"
    if not path.exists():
        raise StackError("py-spy is missing: `make deps` installs it (PyPI package py-spy)")
    return str(path)


@contextlib.contextmanager
def spying(stack, profile: Profile, rate: int):
    """py-spy on each worker of `stack`, `rate` samples a second, while the block runs;
    its samples added to `profile`."""
    with tempfile.TemporaryDirectory() as folder:
        spies = []
        for pid in stack.gunicorn_workers():
            out = Path(folder) / f"{pid}.txt"
            command = [py_spy(), "record", "--pid", str(pid), "--rate", str(rate)]
            command += ["--format", "raw", "--output", str(out), "--gil", "--nonblocking"]
            spy = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            spies.append((spy, out))
        time.sleep(1)  # py-spy attached and sampling
        try:
            yield
        finally:
            for spy, _ in spies:
                spy.send_signal(signal.SIGINT)  # py-spy writes what it has, then exits
            for spy, out in spies:
                said = spy.communicate(timeout=60)[0].decode(errors="replace")
                if spy.returncode or not out.exists():
                    raise StackError(f"py-spy failed on a worker: {said[-2000:]}")
                profile.add(parse(out.read_text()))


def broadcast(
    stack,
    receivers: int,
    messages: int,
    rate: float | None,
    profile: Profile | None = None,
    samples_a_second: int = 0,
):
    """load.broadcast through nginx; load.broadcast's figures. Its deliveries and the
    Django processes' CPU time are added to `profile` if one is given, and with
    `samples_a_second` the samples of py-spy on each worker too."""
    sampled = profile is not None and samples_a_second
    with spying(stack, profile, samples_a_second) if sampled else contextlib.nullcontext():
        before = measure.server_cpu(stack)["django"]
        figures = load.broadcast(stack.http_url, stack.http_url, receivers, messages, rate)
        used = measure.server_cpu(stack)["django"] - before
    if profile is not None:
        delivered = receivers * messages - figures[4]
        profile.deliveries += delivered
        profile.cpu_s += used
        profile.rounds_us.append(round(used / max(delivered, 1) * 1e6, 1))
    return figures


async def _handshakes(url: str, origin: str, count: int) -> None:
    sockets = []
    for _ in range(count):
        socket = await websockets.connect(url, origin=origin, open_timeout=30)
        await socket.recv()  # the greeting: the consumer has run
        sockets.append(socket)
    for socket in sockets:
        await socket.close()


def handshakes(stack, count: int) -> float:
    """Milliseconds of the Django processes' CPU per echo socket opened and closed
    through nginx (the receivers of every broadcast above make as many)."""
    before = measure.server_cpu(stack)["django"]
    load.run_client(_handshakes(ws_url(stack.http_url, "/ws/echo/"), stack.http_url, count))
    time.sleep(0.5)  # the closes handled
    return (measure.server_cpu(stack)["django"] - before) / count * 1e3


def latency(stack, settings: dict) -> dict:
    """p99 at BROADCAST_RATE on `stack`, unprofiled then profiled, and the profile."""
    receivers, messages = settings["receivers"], settings["messages"]
    figures: dict = {"receivers": receivers, "messages": messages, "rate": BROADCAST_RATE}
    figures["workers"] = len(stack.gunicorn_workers())
    # The unprofiled run's deliveries and CPU time apart: the profile's are its window's.
    profile, unprofiled = Profile(), Profile()
    sampled = settings["samples_a_second"]
    runs = (("unprofiled", unprofiled, 0), ("profiled", profile, sampled))
    for run, into, samples_a_second in runs:
        rate, p50, p99, _, dropped, _ = broadcast(
            stack, receivers, messages, BROADCAST_RATE, into, samples_a_second
        )
        figures[run] = {
            "p50 ms": p50,
            "p99 ms": p99,
            "deliveries/s": rate,
            "dropped": dropped,
            "django us per delivery": into.rounds_us[-1],
        }
    figures["profile"] = profile
    return figures


METRICS_SIDES = {"metrics on": {}, "metrics off": {"METRICS": "0"}}
# Where the metrics' own code runs: ours, and the libraries it counts with.
METRICS_FILES = (
    "realtime/metrics.py",
    "metrics/",
    "compat/django_prometheus.py",
    "prometheus_client/",
    "django_prometheus/",
)


def metrics_samples(profile: Profile) -> int:
    return sum(
        count
        for function, count in profile.functions.items()
        if any(f"({prefix}" in function for prefix in METRICS_FILES)
    )


def metrics(stacks: dict, settings: dict, log=print) -> dict[str, Profile]:
    """The unthrottled broadcast on the stacks of METRICS_SIDES, `rounds` rounds each,
    profiled, each round in the other order."""
    receivers, messages = settings["receivers"], settings["max_messages"]
    profiles = {side: Profile() for side in stacks}
    for stack in stacks.values():  # first connections, imports, series: not per delivery
        broadcast(stack, receivers, 10, None, None)
    for round_ in range(settings["rounds"]):
        for side in list(stacks)[:: 1 if round_ % 2 == 0 else -1]:
            cost = handshakes(stacks[side], receivers)
            profiles[side].handshake_ms.append(round(cost, 2))
            sampled = settings["samples_a_second"]
            broadcast(stacks[side], receivers, messages, None, profiles[side], sampled)
        log(f"metrics round {round_ + 1} of {settings['rounds']} done", flush=True)
    return profiles


def _us(profile: Profile, samples: int) -> str:
    return f"{profile.us_per_delivery(samples):.1f}"


def owners_table(profile: Profile) -> list[str]:
    rows = [
        [owner, _us(profile, samples), f"{samples / profile.samples:.1%}"]
        for owner, samples in profile.owners.most_common()
        if samples / profile.samples >= 0.005
    ]
    lines = reports.table(["who runs", "us per delivery", "share"], rows, "lrr")
    return lines + [f"| **in all** | **{_us(profile, profile.samples)}** | |"]


def functions_table(profile: Profile) -> list[str]:
    rows = [
        [f"`{function}`", _us(profile, samples), f"{samples / profile.samples:.1%}"]
        for function, samples in profile.functions.most_common(TOP_FUNCTIONS)
    ]
    return reports.table(["function (self time)", "us per delivery", "share"], rows, "lrr")


def difference_table(on: Profile, off: Profile, counter: str) -> list[str]:
    """Rows of both sides, by the largest difference in CPU per delivery first."""
    a, b = getattr(on, counter), getattr(off, counter)
    keys = sorted(
        set(a) | set(b),
        key=lambda key: -abs(on.us_per_delivery(a[key]) - off.us_per_delivery(b[key])),
    )
    rows = []
    for key in keys[:TOP_FUNCTIONS]:
        yes, no = on.us_per_delivery(a[key]), off.us_per_delivery(b[key])
        shown = f"`{key}`" if counter == "functions" else key
        rows.append([shown, f"{yes:.1f}", f"{no:.1f}", f"{yes - no:+.1f}"])
    yes, no = on.us_per_delivery(on.samples), off.us_per_delivery(off.samples)
    rows.append(
        [
            "**in all**",
            f"**{yes:.1f}**",
            f"**{no:.1f}**",
            f"**{yes - no:+.1f}** ({yes / no - 1:+.1%})",
        ]
    )
    return reports.table(["", "metrics on, us per delivery", "off", "difference"], rows, "lrrr")


def markdown(found: dict, mode: str) -> str:
    lat = found["latency"]
    profile: Profile = lat["profile"]
    quiet, spied = lat["unprofiled"], lat["profiled"]
    lines = [
        *reports.heading(
            f"Where the workers' CPU goes during a broadcast ({mode})", found["machine"]
        ),
        "",
        *reports.versions(found["machine"]),
        "",
        f"## Broadcast to {lat['receivers']} receivers at {lat['rate']} messages a second",
        "",
        f"- p99 **{quiet['p99 ms']:.1f} ms** (p50 {quiet['p50 ms']:.1f} ms,"
        f" {quiet['deliveries/s']:.0f} deliveries/s, {quiet['dropped']} dropped; target < 50 ms),"
        f" Django {quiet['django us per delivery']:.0f} us of CPU per delivery",
        f"- profiled: p99 {spied['p99 ms']:.1f} ms, Django {spied['django us per delivery']:.0f}"
        f" us of CPU per delivery, {profile.samples} samples of the workers holding the GIL;"
        " each row's time is its share of the samples, of that CPU time",
        "",
        *owners_table(profile),
        "",
        f"Top {TOP_FUNCTIONS} functions:",
        "",
        *functions_table(profile),
    ]
    if "metrics" in found:
        on, off = found["metrics"]["metrics on"], found["metrics"]["metrics off"]
        lines += [
            "",
            "## Metrics on and off, unthrottled broadcast",
            "",
            f"{on.deliveries} deliveries a side ({on.samples} and {off.samples} samples);"
            " the two stacks differ only in METRICS=0.",
            "",
            f"- Django's CPU per delivery: metrics on **{on.us_per_delivery(on.samples):.1f} us**,"
            f" off **{off.us_per_delivery(off.samples):.1f} us**"
            f" ({on.cpu_s / off.cpu_s * off.deliveries / on.deliveries - 1:+.1%})",
            f"- round by round: on {on.rounds_us}, off {off.rounds_us} us per delivery",
            "- CPU per handshake (each round, as many echo sockets opened and closed"
            " through nginx as the broadcast has receivers), median: on"
            f" {statistics.median(on.handshake_ms):.2f} ms, off"
            f" {statistics.median(off.handshake_ms):.2f} ms",
            f"- the metrics' own code ({', '.join(METRICS_FILES)}):"
            f" **{on.us_per_delivery(metrics_samples(on)):.1f} us** per delivery,"
            f" {metrics_samples(on) / on.samples:.1%} of the samples with metrics on",
            "",
            *difference_table(on, off, "owners"),
            "",
            "By function, the largest differences:",
            "",
            *difference_table(on, off, "functions"),
        ]
    return "\n".join(lines) + "\n"


SPEED_LOOP = 5_000_000


def python_speed() -> float:
    """Millions of a plain Python loop's additions a second on one core, now: how fast
    this machine runs Python at the time of the run (on a shared VM it varies by hour)."""
    started, total = time.perf_counter(), 0
    for n in range(SPEED_LOOP):
        total += n
    return SPEED_LOOP / (time.perf_counter() - started) / 1e6


def main() -> int:
    args = reports.parser(__doc__, MODES, out="bench-results").parse_args()
    settings = MODES[args.mode]
    try:
        py_spy()
    except StackError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    started = time.monotonic()
    found = {"machine": {**reports.machine(), "python speed": f"{python_speed():.1f}M additions/s"}}
    with contextlib.ExitStack() as running:
        stacks = {
            side: running.enter_context(start_stack("ours", env=env))
            for side, env in METRICS_SIDES.items()
        }
        # "metrics on" is the stack as shipped: the latency part runs on it first.
        found["latency"] = latency(stacks["metrics on"], settings)
        found["metrics"] = metrics(stacks, settings)
    report = markdown(found, args.mode)

    def plain(value):
        if not isinstance(value, Profile):
            return value
        # asdict() would rebuild each Counter from (key, count) pairs, counting the pairs.
        return {**vars(value), "owners": dict(value.owners), "functions": dict(value.functions)}

    data = {
        "machine": found["machine"],
        "latency": {k: plain(v) for k, v in found["latency"].items()},
        "metrics": {k: plain(v) for k, v in found["metrics"].items()},
    }
    reports.publish(args.out, "profile", report, data, started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
