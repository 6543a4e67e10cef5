"""Soak: sustained connection churn against the stack, and whether anything grows.

    make soak                                   # 10 minutes, development settings, natively
    make soak DURATION=120 SETTINGS=prod TARGET=docker
    make soak PATTERN=sessions SETTINGS=prod WARMUP=300 DURATION=1500

Concurrent clients each repeat a session. Two patterns:

- churn (the default): a chat session (connect, history, send one message, wait for its
  broadcast, close) or, one time in four, an echo session (connect, echo, close;
  development only, production has no echo socket), in 20 rooms, beside idle chat sockets
  that stay open for the whole run and read every broadcast;
- sessions: chat sessions only, client n always in room n mod 10, no idle sockets: the
  quick sessions a new user's load test makes.

Every interval it prints per-worker RSS and open file descriptors, Redis
`connected_clients`, MySQL `Threads_connected`, sessions/s, and the files in the workers'
Prometheus multiprocess folder. `--restart-every S` (sessions pattern) also stops a
worker every S seconds, as a crash or a deploy would, so Gunicorn starts another: that
folder must not grow with the restarts (prometheus/client_python#275); a session cut by a
restart (close 1012) is counted apart, not as an error. Growth is counted from the
end of the warm-up; after the churn stops, Redis clients, MySQL threads and file
descriptors must be back at their baseline (taken with the idle sockets open, before any
churn). Natively, each worker also reports what its allocators hold
(worker_memory/sitecustomize.py): live Python objects and C allocations against RSS, so
fragmentation shows apart from a leak. Traffic goes to 127.0.0.1 only and the run is
bounded in time.

Results: printed, and written to soak-results/<time>/ as soak.md, soak.json and soak.png.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import json
import random
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import MySQLdb
import psutil
import redis
import websockets

from proving_ground import reports
from proving_ground.clients import Account, ChatClient, ws_url
from proving_ground.faults import room_offsets
from proving_ground.reports.machine import describe, host, packages
from proving_ground.stacks.compose import COMPOSE_FILE, PROD_FILE, ROOT
from proving_ground.stacks.docker import DockerStack, copy_repository, write_prod_env
from proving_ground.stacks.native import NativeStack

sys.path.insert(0, str(ROOT / "Django"))
from compat.redis import IdleClosingConnectionPool  # noqa: E402

# What the targets allow: workers' RSS growth after warm-up, in percent.
RSS_GROWTH_LIMIT = 5.0
ECHO_SHARE = 0.25
# Client n of the sessions pattern is always in room n mod 10.
PATTERN_ROOMS = {
    "churn": [f"soak-{n}" for n in range(20)],
    "sessions": [f"sessions-{n}" for n in range(10)],
}
# A session that fails this soon after a worker restart began was cut by it.
RESTART_GRACE_S = 10.0
# The worker-side memory probe, put on the workers' PYTHONPATH in native runs.
WORKER_MEMORY = Path(__file__).parent.parent / "worker_memory"


def worker_memory_env(
    memory_dir: str, pythonpath: str | None = None, collect: bool = False
) -> dict[str, str]:
    """The django service's variables that make its workers report their allocators'
    figures to `memory_dir` (behind `pythonpath`, if the service needs one); with
    `collect`, each after a full garbage collection."""
    path = ":".join(filter(None, [pythonpath, str(WORKER_MEMORY)]))
    env = {"PYTHONPATH": path, "WORKER_MEMORY_DIR": memory_dir}
    return {**env, "WORKER_MEMORY_COLLECT": "1"} if collect else env


# After the churn: long enough for each worker's Redis pool to close what the churn left
# idle, and for sockets to finish closing.
COOLDOWN_S = IdleClosingConnectionPool.idle_close_interval + 10


@dataclass
class Sample:
    t: float  # seconds since the churn started (negative: before)
    phase: str  # baseline, warm-up, churn, after
    rss_mib: dict[int, float]  # per worker PID
    fds: dict[int, int]
    redis_clients: int
    mysql_threads: int
    sessions: int  # completed since the churn started
    errors: int
    metrics_files: int = 0  # in the workers' PROMETHEUS_MULTIPROC_DIR
    metrics_kib: float = 0.0
    # Per worker PID, bytes by allocator (worker_memory/sitecustomize.py); native only.
    memory: dict[int, dict[str, int]] = field(default_factory=dict)

    @property
    def total_rss(self) -> float:
        return sum(self.rss_mib.values())

    @property
    def total_fds(self) -> int:
        return sum(self.fds.values())

    def memory_mib(self, kind: str) -> float:
        """All workers' bytes of one kind, in MiB: rss, python_live, python_held,
        malloc_live, malloc_held, live (both allocators' bytes in use), free (what they
        hold beyond that) or other (RSS beyond what they hold: code, libraries, stacks)."""
        total = 0
        for m in self.memory.values():
            live = m["python_live"] + m["malloc_live"]
            held = m["python_held"] + m["malloc_held"]
            derived = {"live": live, "free": held - live, "other": m["rss"] - held}
            total += derived[kind] if kind in derived else m[kind]
        return total / 2**20


@dataclass
class Result:
    settings: str
    target: str
    pattern: str
    duration_s: float
    warmup_s: float
    clients: int
    idle: int
    samples: list[Sample] = field(default_factory=list)
    chat_sessions: int = 0
    echo_sessions: int = 0
    errors: int = 0
    last_error: str = ""
    # Every chat session and idle socket against its room's stored messages; holes in
    # the rooms' offsets as MySQL holds them at the end.
    accounted: int = 0
    account: Account = field(default_factory=Account)
    offset_holes: int = 0
    restart_every_s: float = 0.0
    restarts: int = 0
    cut_by_restarts: int = 0  # sessions closed with 1012 by a worker's restart

    def at(self, phase: str) -> Sample:
        return [s for s in self.samples if s.phase == phase][-1]

    @property
    def sessions_after_warmup(self) -> int:
        return self.at("churn").sessions - self.at("warm-up").sessions

    def rss_growth_pct(self) -> float:
        start, end = self.at("warm-up").total_rss, self.at("churn").total_rss
        return 100 * (end - start) / start

    def rss_growth_per_session_kib(self) -> float:
        grown = self.at("churn").total_rss - self.at("warm-up").total_rss
        return grown * 1024 / max(1, self.sessions_after_warmup)

    def memory_growth_per_session_kib(self, kind: str) -> float:
        grown = self.at("churn").memory_mib(kind) - self.at("warm-up").memory_mib(kind)
        return grown * 1024 / max(1, self.sessions_after_warmup)

    def growth_slope_kib(self, kind: str) -> float:
        """KiB per session that `kind` (rss, or one of Sample.memory_mib's) grows after
        the warm-up, as the median of the slopes between every two samples from then on
        (Theil-Sen): a leak grows with every session, so every pair sees it; a cache or
        an allocator that fills once is a step that only the pairs across it see."""
        samples = [s for s in self.samples if s.phase in ("warm-up", "churn")]
        samples = samples[samples.index(self.at("warm-up")) :]

        def mib(sample: Sample) -> float:
            return sample.total_rss if kind == "rss" else sample.memory_mib(kind)

        slopes = [
            (mib(b) - mib(a)) * 1024 / (b.sessions - a.sessions)
            for a, b in itertools.combinations(samples, 2)
            if b.sessions > a.sessions
        ]
        return statistics.median(slopes)

    def targets(self) -> list[tuple[str, bool]]:
        base, after = self.at("baseline"), self.at("after")
        growth = self.rss_growth_pct()
        return [
            (
                f"workers' RSS after warm-up: {self.at('warm-up').total_rss:.1f} ->"
                f" {self.at('churn').total_rss:.1f} MiB ({growth:+.2f}%,"
                f" {self.rss_growth_per_session_kib():+.2f} KiB per session; target <"
                f" {RSS_GROWTH_LIMIT:g}%)",
                growth < RSS_GROWTH_LIMIT,
            ),
            (
                f"Redis connected_clients back to baseline: {base.redis_clients} ->"
                f" {after.redis_clients}",
                after.redis_clients <= base.redis_clients,
            ),
            (
                f"MySQL Threads_connected back to baseline: {base.mysql_threads} ->"
                f" {after.mysql_threads}",
                after.mysql_threads <= base.mysql_threads,
            ),
            (
                f"workers' open file descriptors back to baseline: {base.total_fds} ->"
                f" {after.total_fds}",
                after.total_fds <= base.total_fds,
            ),
            (
                f"errors: {self.errors}" + (f" (last: {self.last_error})" if self.errors else ""),
                self.errors == 0,
            ),
            (
                f"Prometheus multiprocess folder after warm-up: {self.at('warm-up').metrics_files}"
                f" -> {self.at('churn').metrics_files} files ({self.restarts} worker restarts)",
                self.at("churn").metrics_files <= self.at("warm-up").metrics_files,
            ),
            (
                f"clients accounted for: {self.accounted}; gaps {self.account.gaps}, duplicates"
                f" {self.account.duplicates}, out of order {self.account.out_of_order};"
                f" holes in the rooms' offsets {self.offset_holes}",
                self.accounted > 0 and self.account.clean and not self.offset_holes,
            ),
        ]


# -- the stack ----------------------------------------------------------------------------


@contextlib.contextmanager
def running_stack(settings: str, target: str):
    """The stack in development or production settings, natively or in containers;
    natively, its workers report their allocators' figures (WORKER_MEMORY)."""
    files = [COMPOSE_FILE.name] + ([PROD_FILE.name] if settings == "prod" else [])
    if target == "docker":
        stack = DockerStack(files=tuple(files))
        if settings == "prod":
            write_prod_env(stack.dir)
        with stack:
            yield stack
        return
    with tempfile.TemporaryDirectory(prefix="soak-") as tmp:
        root = ROOT
        if settings == "prod":  # production secrets in a copy, never in the work tree
            root = copy_repository(Path(tmp) / "repo")
            write_prod_env(root)
        probe = worker_memory_env(tmp)
        with NativeStack(compose_files=tuple(root / f for f in files), django_env=probe) as stack:
            yield stack


def worker_processes(stack) -> list[psutil.Process]:
    """The Uvicorn workers as host processes."""
    if isinstance(stack, DockerStack):
        return stack.worker_processes()
    return [psutil.Process(pid) for pid in stack.gunicorn_workers()]


def debug_endpoints(stack) -> bool:
    """Whether the stack serves the echo socket: DEBUG_ENDPOINTS, which defaults to DEBUG."""
    env = stack.django_env()
    return env.get("DEBUG_ENDPOINTS", env.get("DEBUG", "0")).lower() in {"1", "true", "yes", "on"}


def origin_of(stack) -> str:
    """The Origin a browser on the site would send: the first ALLOWED_HOSTS entry in
    production (behind its TLS proxy), the stack's own address in development."""
    env = stack.django_env()
    if env.get("ENVIRONMENT") == "production":
        return "https://" + env["ALLOWED_HOSTS"].split(",")[0].strip()
    return stack.http_url


class Probe:
    """Samples the workers, Redis and MySQL."""

    def __init__(self, stack) -> None:
        self.stack = stack
        env = stack.django_env()
        self.workers = worker_processes(stack)
        memory_dir = env.get("WORKER_MEMORY_DIR") if isinstance(stack, NativeStack) else None
        self.memory_dir = Path(memory_dir) if memory_dir else None
        self.redis = redis.Redis(
            host="127.0.0.1", port=stack.redis_port, password=env.get("REDIS_PASSWORD") or None
        )
        self.mysql = MySQLdb.connect(
            host="127.0.0.1",
            port=stack.mysql_port,
            user=env["MYSQL_USER"],
            password=env["MYSQL_PASSWORD"],
            database=env["MYSQL_DATABASE"],
        )

    def sample(self, t: float, phase: str, sessions: int, errors: int) -> Sample:
        self.workers = worker_processes(self.stack)  # new ones after a restart
        files, size = self.metrics_folder()
        cursor = self.mysql.cursor()
        cursor.execute("SHOW GLOBAL STATUS LIKE 'Threads_connected'")
        threads = int(cursor.fetchone()[1]) - 1  # not counting this probe's own
        return Sample(
            t=round(t, 1),
            phase=phase,
            rss_mib={w.pid: w.memory_info().rss / 2**20 for w in self.workers},
            fds={w.pid: self.fds(w) for w in self.workers},
            redis_clients=int(self.redis.info("clients")["connected_clients"]) - 1,
            mysql_threads=threads,
            sessions=sessions,
            errors=errors,
            memory=self.worker_memory(),
            metrics_files=files,
            metrics_kib=size / 1024,
        )

    def fds(self, worker: psutil.Process) -> int:
        """The worker's open file descriptors but its metrics files: a worker opens those
        on its first frames, and the folder is counted apart (metrics_folder)."""
        folder = worker.environ().get("PROMETHEUS_MULTIPROC_DIR")
        metrics = 0
        if folder:
            with contextlib.suppress(psutil.Error):
                metrics = sum(f.path.startswith(folder) for f in worker.open_files())
        return worker.num_fds() - metrics

    def metrics_folder(self) -> tuple[int, int]:
        """Files and bytes in the workers' PROMETHEUS_MULTIPROC_DIR, through a worker's
        /proc root (the container's, in Docker; root may read it)."""
        worker = self.workers[0]
        folder = worker.environ().get("PROMETHEUS_MULTIPROC_DIR", "")
        path = Path(f"/proc/{worker.pid}/root") / folder.lstrip("/")
        files = [entry.stat().st_size for entry in path.iterdir()] if folder else []
        return len(files), sum(files)

    def worker_memory(self) -> dict[int, dict[str, int]]:
        """Each worker's latest report (written every 2 s), if the workers report."""
        if self.memory_dir is None:
            return {}
        reports = {}
        for worker in self.workers:
            path = self.memory_dir / f"{worker.pid}.json"
            try:
                reports[worker.pid] = json.loads(path.read_text())
            except FileNotFoundError as missing:
                if time.time() - worker.create_time() < 5:
                    continue  # just started (a restart): its first report is due
                raise RuntimeError(
                    f"worker {worker.pid} wrote no memory report to {self.memory_dir}"
                ) from missing
        return reports

    def close(self) -> None:
        self.redis.close()
        self.mysql.close()


# -- the load -----------------------------------------------------------------------------


class Churn:
    def __init__(self, stack, origin: str, result: Result) -> None:
        self.stack, self.origin, self.result = stack, origin, result
        self.stop = asyncio.Event()
        self.restarted_at = -RESTART_GRACE_S  # when the last worker restart began
        self.step: dict[int, str] = {}  # the step each client is at, for error reports
        self.rooms = PATTERN_ROOMS[result.pattern]
        # Production has no echo socket (DEBUG_ENDPOINTS): chat sessions only.
        echo = result.pattern == "churn" and debug_endpoints(stack)
        self.echo_share = ECHO_SHARE if echo else 0.0

    def cut_by_restart(self, error: Exception) -> bool:
        """A session a worker's restart ended: closed with 1012 (the worker going away), or
        a handshake nginx could not pass on (the worker's queue reset), just after one."""
        if time.monotonic() - self.restarted_at > RESTART_GRACE_S:
            return False
        if isinstance(error, websockets.ConnectionClosed):
            return error.rcvd is not None and error.rcvd.code == 1012
        return isinstance(error, websockets.InvalidStatus) and error.response.status_code >= 500

    def room_of(self, n: int) -> str:
        if self.result.pattern == "sessions":
            return self.rooms[n % len(self.rooms)]
        return random.choice(self.rooms)

    @property
    def sessions(self) -> int:
        return self.result.chat_sessions + self.result.echo_sessions

    async def chat_session(self, n: int) -> None:
        client = ChatClient(self.stack.http_url, self.room_of(n), f"churn{n}", self.origin)
        self.step[n] = "chat connect"
        try:
            await client.connect()
            self.step[n] = "chat send"
            own = await client.say(f"soak {n} {time.monotonic():.3f}", timeout=30)
        finally:
            await client.close()
        self.result.chat_sessions += 1
        # Frames come in offset order: by its own message it had every one since it joined
        # (offsets have no holes; soak() checks MySQL's at the end).
        self.result.account += client.account(list(range(1, own["offset"] + 1)))
        self.result.accounted += 1

    async def echo_session(self, n: int) -> None:
        url = ws_url(self.stack.http_url, "/ws/echo/")
        self.step[n] = "echo"
        async with websockets.connect(url, origin=self.origin, open_timeout=10) as socket:
            await socket.recv()  # hello
            await socket.send(json.dumps({"type": "echo", "text": f"soak {n}"}))
            async with asyncio.timeout(30):
                while json.loads(await socket.recv()).get("type") != "echo":
                    pass
        self.result.echo_sessions += 1

    async def client(self, n: int) -> None:
        while not self.stop.is_set():
            session = self.echo_session if random.random() < self.echo_share else self.chat_session
            try:
                await session(n)
            except Exception as error:  # counted and reported; the run goes on
                if self.cut_by_restart(error):
                    self.result.cut_by_restarts += 1
                    continue
                self.result.errors += 1
                self.result.last_error = f"{self.step.get(n)}: {type(error).__name__}: {error}"
                await asyncio.sleep(0.5)


async def restart_workers(stack, churn: Churn, every: float) -> None:
    """Every `every` seconds, SIGTERM the oldest worker, as a deploy or a crash would stop
    it; Gunicorn starts another."""
    while not churn.stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(churn.stop.wait(), every)
            return
        oldest = min(worker_processes(stack), key=lambda worker: worker.create_time())
        churn.restarted_at = time.monotonic()
        with contextlib.suppress(psutil.NoSuchProcess):
            oldest.terminate()
        churn.result.restarts += 1


async def idle_socket(stack, origin: str, room: str, stop: asyncio.Event, result: Result):
    """A socket held open for the whole run, reading every broadcast of its room; at the
    end, accounted for against the room's stored messages."""
    client = ChatClient(stack.http_url, room, "idle", origin)
    await client.connect()
    try:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await client.next_frame(timeout=1)
        stored = await asyncio.to_thread(room_offsets, stack, room)
        await client.catch_up(max(stored, default=0))
        result.account += client.account(stored)
        result.accounted += 1
    finally:
        await client.close()


async def soak(
    stack,
    settings: str,
    target: str,
    duration: float,
    warmup: float,
    interval: float,
    clients: int,
    idle: int,
    cooldown: float = COOLDOWN_S,
    report=print,
    pattern: str = "churn",
    restart_every: float = 0.0,
    min_sessions: int = 0,
) -> Result:
    """Churn for `duration` seconds after `warmup`; and on, sample by sample, until
    `min_sessions` sessions ran after the warm-up, for at most `duration` more (a machine
    slowed by its neighbours churns fewer sessions a second)."""
    if pattern == "sessions":
        idle = 0  # the pattern is sessions alone
    if restart_every and idle:
        raise ValueError("--restart-every needs the sessions pattern (idle sockets would be cut)")
    result = Result(settings, target, pattern, duration, warmup, clients, idle)
    result.restart_every_s = restart_every
    origin = origin_of(stack)
    probe = Probe(stack)
    idle_stop = asyncio.Event()
    rooms = PATTERN_ROOMS[pattern]
    idlers = [
        asyncio.create_task(idle_socket(stack, origin, rooms[n % len(rooms)], idle_stop, result))
        for n in range(idle)
    ]
    churn = Churn(stack, origin, result)

    def take(t: float, phase: str) -> Sample:
        sample = probe.sample(t, phase, churn.sessions, result.errors)
        result.samples.append(sample)
        report(row(sample, result.samples))
        return sample

    try:
        await asyncio.sleep(3)  # the idle sockets settle
        report(header(memory=probe.memory_dir is not None))
        take(0.0, "baseline")
        started = time.monotonic()
        tasks = [asyncio.create_task(churn.client(n)) for n in range(clients)]
        if restart_every:
            tasks.append(asyncio.create_task(restart_workers(stack, churn, restart_every)))
        await asyncio.sleep(warmup)
        warm = take(time.monotonic() - started, "warm-up")
        end = started + warmup + duration
        while (left := end - time.monotonic()) > 0:
            await asyncio.sleep(min(interval, left))
            take(time.monotonic() - started, "churn")
        while churn.sessions - warm.sessions < min_sessions and time.monotonic() < end + duration:
            await asyncio.sleep(interval)
            take(time.monotonic() - started, "churn")
        result.duration_s = round(time.monotonic() - started - warmup, 1)
        churn.stop.set()
        await asyncio.gather(*tasks)
        # The churn's pools and sockets go idle and close (pools once a minute): wait for
        # the baseline, at most `cooldown` seconds.
        stopped, base = time.monotonic(), result.samples[0]
        while time.monotonic() - stopped < cooldown:
            await asyncio.sleep(5)
            now = probe.sample(0.0, "after", churn.sessions, result.errors)
            if back_to_baseline(base, now):
                break
        take(time.monotonic() - started, "after")
    finally:
        churn.stop.set()
        idle_stop.set()
        await asyncio.gather(*idlers, return_exceptions=True)
        probe.close()
    for room in rooms:
        stored = room_offsets(stack, room)
        result.offset_holes += max(stored, default=0) - len(set(stored))
    return result


def back_to_baseline(base: Sample, now: Sample) -> bool:
    return (
        now.redis_clients <= base.redis_clients
        and now.mysql_threads <= base.mysql_threads
        and now.total_fds <= base.total_fds
    )


# -- reporting ----------------------------------------------------------------------------


def header(memory: bool = False) -> str:
    return (
        f"{'t s':>7} {'phase':<9} {'workers RSS MiB':>22} {'fds':>9}"
        f" {'redis':>6} {'mysql':>6} {'sessions':>9} {'/s':>6} {'errors':>6} {'metrics':>7}"
        + (f" {'live MiB':>9} {'free MiB':>9}" if memory else "")
    )


def row(sample: Sample, samples: list[Sample]) -> str:
    previous = samples[-2] if len(samples) > 1 else sample
    elapsed = sample.t - previous.t
    rate = (sample.sessions - previous.sessions) / elapsed if elapsed > 0 else 0.0
    rss = " + ".join(f"{v:.1f}" for v in sample.rss_mib.values())
    fds = "+".join(str(v) for v in sample.fds.values())
    memory = (
        f" {sample.memory_mib('live'):>9.1f} {sample.memory_mib('free'):>9.1f}"
        if sample.memory
        else ""
    )
    return (
        f"{sample.t:>7.1f} {sample.phase:<9} {rss:>22} {fds:>9} {sample.redis_clients:>6}"
        f" {sample.mysql_threads:>6} {sample.sessions:>9} {rate:>6.1f} {sample.errors:>6}"
        f" {sample.metrics_files:>7}" + memory
    )


# What each kind of Sample.memory_mib is, for the report.
MEMORY_KINDS = {
    "rss": "RSS",
    "python_live": "Python objects up to 512 B, live (pymalloc's allocated blocks)",
    "malloc_live": "malloc, in use (larger objects, C libraries)",
    "free": "free space the allocators hold (pymalloc arenas, malloc heaps)",
    "other": "the rest of RSS (code, libraries, stacks)",
}


def memory_table(result: Result) -> list[str]:
    """Where the workers' RSS growth went, by allocator: a leak grows what is live,
    fragmentation grows what the allocators hold free."""
    warm, end = result.at("warm-up"), result.at("churn")
    if not (warm.memory and end.memory):
        return []
    rows = []
    for kind, what in MEMORY_KINDS.items():
        start, stop = warm.memory_mib(kind), end.memory_mib(kind)
        per = result.memory_growth_per_session_kib(kind)
        rows.append(
            [what, f"{start:.1f}", f"{stop:.1f}", f"{stop - start:+.1f}", f"{per:+.3f} KiB"]
        )
    header = ["workers' memory, MiB (after warm-up)", "start", "end", "change", "per session"]
    return ["", *reports.table(header, rows, "lrrrr")]


def markdown(result: Result) -> str:
    lines = [
        f"Soak: {result.pattern} pattern, {result.settings} settings, {result.target};"
        f" {result.clients} churning clients in {len(PATTERN_ROOMS[result.pattern])} rooms,"
        f" {result.idle} idle sockets; warm-up {result.warmup_s:g} s, then"
        f" {result.duration_s:g} s measured.",
        "",
    ]
    header = ["t s", "phase", "workers' RSS MiB", "fds", "Redis clients", "MySQL threads"]
    samples = [
        [f"{s.t:.0f}", s.phase, f"{s.total_rss:.1f}", s.total_fds, s.redis_clients]
        + [s.mysql_threads, s.sessions, s.errors]
        for s in result.samples
    ]
    lines += reports.table([*header, "sessions", "errors"], samples, "rlrrrrrr")
    base, warm, end, after = (result.at(p) for p in ("baseline", "warm-up", "churn", "after"))
    rss = f"{end.total_rss - warm.total_rss:+.1f} ({result.rss_growth_pct():+.2f}%)"
    growth = [
        ["workers' RSS MiB", f"{warm.total_rss:.1f}", f"{end.total_rss:.1f}", rss],
        ["open fds (baseline, after the churn)", base.total_fds, after.total_fds]
        + [f"{after.total_fds - base.total_fds:+d}"],
        ["Redis clients (baseline, after)", base.redis_clients, after.redis_clients]
        + [f"{after.redis_clients - base.redis_clients:+d}"],
        ["MySQL threads (baseline, after)", base.mysql_threads, after.mysql_threads]
        + [f"{after.mysql_threads - base.mysql_threads:+d}"],
    ]
    lines += [
        "",
        *reports.table(["growth after warm-up", "start", "end", "change"], growth, "lrrr"),
        *memory_table(result),
        "",
        f"Sessions after warm-up: {result.sessions_after_warmup} (chat {result.chat_sessions},"
        f" echo {result.echo_sessions} in all).",
        f"Prometheus multiprocess folder: {base.metrics_files} files ({base.metrics_kib:.0f}"
        f" KiB) at the baseline, {end.metrics_files} ({end.metrics_kib:.0f} KiB) at the end"
        + (
            f"; a worker restarted every {result.restart_every_s:g} s: {result.restarts}"
            f" restarts, {result.cut_by_restarts} sessions cut by them (closed 1012 or"
            " refused while the worker went)."
            if result.restarts
            else "."
        ),
        "",
        "Targets:",
    ]
    lines += [f"- {'met' if ok else 'NOT MET'}: {text}" for text, ok in result.targets()]
    return "\n".join(lines) + "\n"


def plot(result: Result, folder: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    samples = [s for s in result.samples if s.phase in ("warm-up", "churn")]
    fig, ax = plt.subplots(figsize=(8, 4))
    for pid in samples[0].rss_mib:
        ax.plot(
            [s.t for s in samples],
            [s.rss_mib.get(pid, 0) for s in samples],
            marker="o",
            label=f"worker {pid}",
        )
    ax.set_xlabel(f"seconds since the churn started (the first {result.warmup_s:g} s: warm-up)")
    ax.set_ylabel("RSS MiB")
    ax.set_ylim(bottom=0)
    ax.set_title(
        f"Workers' RSS under {result.pattern} ({result.settings}, {result.target}):"
        f" {result.rss_growth_pct():+.2f}% after warm-up"
    )
    ax.legend()
    fig.tight_layout()
    fig.savefig(folder / "soak.png", dpi=90)
    plt.close(fig)


def main() -> int:
    parser = reports.parser(__doc__, out="soak-results")
    parser.add_argument("--duration", type=float, default=600, help="seconds after warm-up")
    parser.add_argument("--warmup", type=float, default=60)
    parser.add_argument("--interval", type=float, default=30)
    parser.add_argument("--clients", type=int, default=40, help="churning clients")
    parser.add_argument("--idle", type=int, default=100, help="sockets held open")
    parser.add_argument("--settings", choices=("dev", "prod"), default="dev")
    parser.add_argument("--pattern", choices=tuple(PATTERN_ROOMS), default="churn")
    parser.add_argument("--target", choices=("native", "docker"), default="native")
    parser.add_argument(
        "--restart-every",
        type=float,
        default=0.0,
        help="seconds between worker restarts (SIGTERM; sessions pattern only); 0: none",
    )
    args = parser.parse_args()
    print(
        f"soak: {args.pattern} pattern, {args.settings} settings, {args.target};"
        " starting the stack ...",
        flush=True,
    )
    started = time.monotonic()
    with running_stack(args.settings, args.target) as stack:
        result = asyncio.run(
            soak(
                stack,
                args.settings,
                args.target,
                args.duration,
                args.warmup,
                args.interval,
                args.clients,
                args.idle,
                report=lambda s: print(s, flush=True),
                pattern=args.pattern,
                restart_every=args.restart_every,
            )
        )
    report = f"Machine: {describe({**host(), 'packages': packages()})}\n\n" + markdown(result)
    print()
    reports.publish(
        args.out, "soak", report, asdict(result), started, functools.partial(plot, result)
    )
    return 0 if all(ok for _, ok in result.targets()) else 1


if __name__ == "__main__":
    sys.exit(main())
