"""How many clients one machine serves, by the websocket-shootout's broadcast method
(hashrocket/websocket-shootout), for the stack beside daphne and two servers with no
framework, started one after the other in the same run.

    make bench-clients              # quick: steps of 500 clients up to 4000
    make bench-clients MODE=full    # steps of 1000 up to 10000, for publishing

At each step more clients connect; then broadcasts are sent from random clients, a few
in flight at once, and each is timed from its send until every client has it (and, on
servers that send one, the sender has its result). The step counts while the 95th
percentile of those round trips is within 500 ms; the run stops at the first step that
is not, or at the mode's bound on clients or time. Printed per server: the most clients
served, p95 at each step, and the server's CPU per delivery and memory per client;
written to bench-results/<time>/clients.md, clients.json and clients.png.

Load goes to 127.0.0.1 only, from client processes of its own; every run is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import multiprocessing
import random
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from multiprocessing.connection import Connection, wait
from pathlib import Path

import psutil
import websockets

from proving_ground import reports
from proving_ground.clients import ws_url
from proving_ground.clients.load import CLIENT_PROCESSES, run_client
from proving_ground.experiments.configs import start_stack
from proving_ground.reports import percentile
from proving_ground.stacks.compose import ROOT
from proving_ground.stacks.native import NativeStack, StackError, free_port, require_binaries

LIMIT_MS = 500  # the shootout's bound: 95% of broadcasts within 500 ms
LIMIT_PERCENTILE = 95
CONCURRENT = 4  # broadcasts in flight at once, as in the published runs
BROADCAST_TIMEOUT = 10.0  # seconds a broadcast may take before the step fails
MODES = {
    # For the test suite: proves the command end to end, measures nothing worth quoting.
    "smoke": {"step": 20, "max_clients": 40, "samples": 8, "seconds": 60},
    "quick": {"step": 500, "max_clients": 4000, "samples": 20, "seconds": 150},
    "full": {"step": 1000, "max_clients": 10000, "samples": 40, "seconds": 600},
}
NODE_WS = ROOT / "proving_ground" / "peers" / "node_ws"
NODE_SERVER = "Node, ws"  # the bar: each row says what share of its clients it serves
OWN_LAYER_SERVER = "stack, fanout layer"
OWN_LAYER_CHAT = "stack, fanout layer, chat room"


@dataclass
class Step:
    clients: int
    p95_ms: float
    p50_ms: float
    max_ms: float
    cpu_us_per_delivery: float  # the server's CPU time over clients x broadcasts
    kib_per_client: float  # the server's RSS over what it had before the first client


@dataclass
class Result:
    server: str
    via: str
    processes: str
    steps: list[Step] = field(default_factory=list)
    stopped: str = ""

    @property
    def served(self) -> int:
        within = [s.clients for s in self.steps if s.p95_ms <= LIMIT_MS]
        return max(within, default=0)


# -- the servers -----------------------------------------------------------------------------


class Server:
    """A server under test: where to connect, which protocol it speaks, its processes."""

    name: str
    via: str
    processes: str
    url: str  # set on entering
    origin: str
    # "channels": the stack's echo socket (/ws/echo/), whose broadcast reaches the sender
    # too (Channels groups hold every socket): that copy is the sender's result.
    # "chat": a chat room's message, the same way.
    # "shootout": the shootout's own frames, with a separate broadcastResult.
    protocol: str

    def roots(self) -> list[psutil.Process]:
        raise NotImplementedError

    def usage(self) -> tuple[float, int]:
        """(CPU seconds so far, RSS bytes now) over the server's processes."""
        cpu, rss = 0.0, 0
        for root in self.roots():
            with contextlib.suppress(psutil.NoSuchProcess):
                for process in [root, *root.children(recursive=True)]:
                    with contextlib.suppress(psutil.NoSuchProcess):
                        times = process.cpu_times()
                        cpu += times.user + times.system
                        rss += process.memory_info().rss
        return cpu, rss


# The stack's routes a broadcast can take: the echo socket's group send, or a chat room's
# message (stored in MySQL with its offset, then sent in order).
STACK_ROUTES = {"channels": "/ws/echo/", "chat": "/ws/talk/shootout/"}


class StackServer(Server):
    """The native stack (nginx, Gunicorn's workers, Redis), or daphne in Gunicorn's place."""

    def __init__(
        self, name: str, config: str, layer: str, processes: str, protocol: str = "channels"
    ) -> None:
        self.name, self.config, self.layer, self.processes = name, config, layer, processes
        self.protocol = protocol
        self.via = "nginx"

    def __enter__(self) -> Server:
        self.stack: NativeStack = start_stack(self.config, layer=self.layer)
        self.stack.__enter__()
        self.url = ws_url(self.stack.http_url, STACK_ROUTES[self.protocol])
        self.origin = self.stack.http_url
        return self

    def __exit__(self, *exc) -> None:
        self.stack.__exit__(*exc)

    def roots(self) -> list[psutil.Process]:
        # Redis counts: the channel layer is part of what serves a broadcast; so does
        # MySQL, where a chat room's message is stored first.
        names = ("nginx", "django", "redis", *(("mysql",) if self.protocol == "chat" else ()))
        return [psutil.Process(self.stack.executors[name].process.pid) for name in names]


class PeerServer(Server):
    """A server of its own process, on a free loopback port."""

    protocol = "shootout"
    via = "direct"
    processes = "1"

    def __init__(self, name: str, command: list[str], cwd: Path) -> None:
        self.name, self.command, self.cwd = name, command, cwd

    def __enter__(self) -> Server:
        port = free_port()
        self.process = subprocess.Popen(
            [*self.command, str(port)], cwd=self.cwd, stdout=subprocess.PIPE, text=True
        )
        line = self.process.stdout.readline()
        if not line.startswith("listening"):
            self.process.kill()
            raise StackError(f"{self.name} did not start: {line!r}")
        self.url = self.origin = f"ws://127.0.0.1:{port}/"
        return self

    def __exit__(self, *exc) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)

    def roots(self) -> list[psutil.Process]:
        return [psutil.Process(self.process.pid)]


def servers_under_test(keys: list[str] | None = None) -> list[Server]:
    """Every server, in the run's order, or those `keys` name (--servers)."""
    servers = {
        "fanout": StackServer(OWN_LAYER_SERVER, "ours", "fanout", "2 workers"),
        "fanout-chat": StackServer(OWN_LAYER_CHAT, "ours", "fanout", "2 workers", protocol="chat"),
        "core": StackServer("stack, core layer", "ours", "core", "2 workers"),
        "pubsub": StackServer("stack, pub/sub layer", "ours", "pubsub", "2 workers"),
        "daphne": StackServer("daphne, same app", "daphne", "core", "1"),
        "node": PeerServer(NODE_SERVER, ["node", "server.js"], NODE_WS),
        "websockets": PeerServer(
            "Python, websockets",
            [sys.executable, "-m", "proving_ground.peers.websockets_server"],
            ROOT,
        ),
    }
    if unknown := set(keys or ()) - set(servers):
        raise StackError(
            f"no server {', '.join(sorted(unknown))}; the servers are {', '.join(servers)}"
        )
    return [server for key, server in servers.items() if not keys or key in keys]


# -- the clients, in processes of their own --------------------------------------------------


class Clients:
    """Sockets in one process, driven over a pipe: ("add", n), ("send", id), ("stop",).
    Each broadcast's id is reported back once every socket here has it: ("done", id,
    last arrival, send time or None), on the monotonic clock all processes share."""

    def __init__(self, url: str, origin: str, protocol: str, pipe: Connection) -> None:
        self.url, self.origin, self.protocol, self.pipe = url, origin, protocol, pipe
        self.sockets: list = []
        self.arrivals: dict[str, list] = {}  # id -> [count, last arrival]
        self.sent: dict[str, float] = {}  # ids sent from here -> send time
        self.readers: list[asyncio.Task] = []

    def expected(self, key: str) -> int:
        result = self.protocol == "shootout" and key in self.sent
        return len(self.sockets) + result

    def arrived(self, key: str) -> None:
        entry = self.arrivals.setdefault(key, [0, 0.0])
        entry[0] += 1
        entry[1] = time.monotonic()
        if entry[0] == self.expected(key):
            del self.arrivals[key]
            self.pipe.send(("done", key, entry[1], self.sent.pop(key, None)))

    async def read(self, connection) -> None:
        try:
            async for data in connection:
                frame = json.loads(data)
                if self.protocol in STACK_ROUTES:
                    text = frame.get("text") or ""
                    kind = "message" if self.protocol == "chat" else "broadcast"
                    if frame.get("type") == kind and text.startswith("shootout:"):
                        self.arrived(text)
                elif frame.get("type") in ("broadcast", "broadcastResult"):
                    self.arrived(frame["payload"]["id"])
        except websockets.ConnectionClosed as closed:
            self.pipe.send(("error", f"a client's socket closed: {closed}"))

    async def connect(self) -> None:
        connection = await websockets.connect(
            self.url, origin=self.origin, max_queue=None, open_timeout=30, compression=None
        )
        if self.protocol in STACK_ROUTES:
            await connection.recv()  # the echo socket's greeting, the chat room's history
        self.sockets.append(connection)
        self.readers.append(asyncio.create_task(self.read(connection)))

    async def add(self, count: int) -> None:
        gate = asyncio.Semaphore(50)

        async def one():
            async with gate:
                await self.connect()

        await asyncio.gather(*(one() for _ in range(count)))

    async def send(self, key: str) -> None:
        if self.protocol == "channels":
            frame = {"type": "broadcast", "text": key}
        elif self.protocol == "chat":
            frame = {"type": "message", "nickname": "shootout", "text": key}
        else:
            frame = {"type": "broadcast", "payload": {"id": key}}
        self.sent[key] = time.monotonic()
        await random.choice(self.sockets).send(json.dumps(frame))

    async def serve(self) -> None:
        loop = asyncio.get_running_loop()
        commands: asyncio.Queue = asyncio.Queue()
        loop.add_reader(self.pipe.fileno(), lambda: commands.put_nowait(self.pipe.recv()))
        while True:
            command = await commands.get()
            try:
                if command[0] == "add":
                    await self.add(command[1])
                    self.pipe.send(("added", len(self.sockets)))
                elif command[0] == "send":
                    await self.send(command[1])
                elif command[0] == "stop":
                    for reader in self.readers:
                        reader.cancel()
                    await asyncio.gather(*(s.close() for s in self.sockets), return_exceptions=True)
                    self.pipe.send(("stopped",))
                    return
            except (OSError, websockets.WebSocketException, TimeoutError) as error:
                self.pipe.send(("error", f"{command[0]}: {error!r}"))


def _client_process(url: str, origin: str, protocol: str, pipe: Connection) -> None:
    # Thousands of sockets: as many descriptors as the hard limit allows.
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    run_client(Clients(url, origin, protocol, pipe).serve())


class ClientError(Exception):
    pass


def stop_clients(pipes: list[Connection], processes: list) -> None:
    """Ask each client process to stop, then wait for it; kill one that does not."""
    for pipe in pipes:
        with contextlib.suppress(OSError):
            pipe.send(("stop",))
    for process in processes:
        process.join(timeout=30)
        if process.is_alive():
            process.kill()


def client_reports(pipes: list[Connection], timeout: float) -> list[tuple[int, tuple]]:
    """(pipe's index, message) for each client process that reported within `timeout`
    (at least one); a client's ("error", reason) raises ClientError."""
    ready = wait(pipes, timeout)
    if not ready:
        raise ClientError(f"no answer from the clients in {timeout:.0f} s")
    messages = []
    for pipe in ready:
        message = pipe.recv()
        if message[0] == "error":
            raise ClientError(message[1])
        messages.append((pipes.index(pipe), message))
    return messages


def measure(server: Server, settings: dict, log=print) -> Result:
    result = Result(server.name, server.via, server.processes)
    context = multiprocessing.get_context("fork")
    pipes, processes = [], []
    for _ in range(CLIENT_PROCESSES):
        mine, theirs = context.Pipe()
        process = context.Process(
            target=_client_process, args=(server.url, server.origin, server.protocol, theirs)
        )
        process.start()
        pipes.append(mine)
        processes.append(process)
    started = time.monotonic()
    _, baseline_rss = server.usage()
    clients, serial = 0, 0
    try:
        while clients < settings["max_clients"]:
            if time.monotonic() - started > settings["seconds"]:
                result.stopped = f"time bound ({settings['seconds']} s)"
                break
            step = min(settings["step"], settings["max_clients"] - clients)
            for i, pipe in enumerate(pipes):
                pipe.send(("add", step // len(pipes) + (i < step % len(pipes))))
            added = 0
            while added < len(pipes):
                added += sum(m[0] == "added" for _, m in client_reports(pipes, 120))
            clients += step
            cpu_before, _ = server.usage()
            rtts: list[float] = []
            in_flight: dict[str, list] = {}  # id -> [reports left, last arrival, sent at]
            samples = settings["samples"]
            while len(rtts) < samples:
                while len(in_flight) < CONCURRENT and len(rtts) + len(in_flight) < samples:
                    serial += 1
                    key = f"shootout:{serial}"
                    in_flight[key] = [len(pipes), 0.0, None]
                    random.choice(pipes).send(("send", key))
                for _, (_done, key, last, sent) in client_reports(pipes, BROADCAST_TIMEOUT):
                    entry = in_flight[key]
                    entry[0] -= 1
                    entry[1] = max(entry[1], last)
                    entry[2] = sent if sent is not None else entry[2]
                    if entry[0] == 0:
                        del in_flight[key]
                        rtts.append((entry[1] - entry[2]) * 1000)
            cpu_after, rss = server.usage()
            stats = Step(
                clients,
                round(percentile(rtts, LIMIT_PERCENTILE), 1),
                round(statistics.median(rtts), 1),
                round(max(rtts), 1),
                round((cpu_after - cpu_before) / (samples * clients) * 1e6, 2),
                round((rss - baseline_rss) / clients / 1024, 1),
            )
            result.steps.append(stats)
            log(f"  {server.name}: {format_step(stats)}")
            if stats.p95_ms > LIMIT_MS:
                result.stopped = f"p95 over {LIMIT_MS} ms"
                break
        else:
            result.stopped = f"client bound ({settings['max_clients']})"
    except ClientError as error:
        result.stopped = f"failed at {clients} clients: {error}"
        log(f"  {server.name}: {result.stopped}")
    finally:
        stop_clients(pipes, processes)
    return result


def format_step(step: Step) -> str:
    return (
        f"{step.clients} clients: p95 {step.p95_ms} ms (p50 {step.p50_ms}, max {step.max_ms});"
        f" {step.cpu_us_per_delivery} us CPU per delivery, {step.kib_per_client} KiB per client"
    )


# -- the report ----------------------------------------------------------------------------


def markdown(results: list[Result], info: dict, mode: str, settings: dict) -> str:
    out = [
        *reports.heading(f"Clients served, websocket-shootout method ({mode} mode)", info),
        "",
        f"Steps of {settings['step']} clients up to {settings['max_clients']}; at each,"
        f" {settings['samples']} broadcasts from random clients, {CONCURRENT} in flight, each"
        " timed until every client has it; a step counts while p95 is within"
        f" {LIMIT_MS} ms. Clients in {CLIENT_PROCESSES} processes on the same machine.",
        "",
    ]
    node = next((r.served for r in results if r.server == NODE_SERVER), 0)
    rows = []
    for r in results:
        best = next((s for s in r.steps if s.clients == r.served), None)
        there = [best.p95_ms, best.cpu_us_per_delivery, best.kib_per_client] if best else [None] * 3
        share = f"{r.served / node:.2f}" if node else "-"
        rows.append([r.server, r.via, r.processes, r.served, share, *there, r.stopped])
    header = ["server", "via", "processes", "most clients served", "of Node ws's"]
    header += ["p95 ms there", "CPU us per delivery", "KiB per client", "stopped by"]
    out += reports.table(header, rows, "lllrrrrrl")
    counts = sorted({s.clients for r in results for s in r.steps})
    p95s = [{s.clients: s.p95_ms for s in r.steps} for r in results]
    steps = [
        [r.server, *(p95.get(c) for c in counts)] for r, p95 in zip(results, p95s, strict=True)
    ]
    out += [
        "",
        "p95 round trip (ms) at each step:",
        "",
        *reports.table(["server", *counts], steps, "l" + "r" * len(counts)),
    ]
    out += [
        "",
        "What differs between the sides: the stack's rows go through nginx to Gunicorn's"
        " workers and Redis (all three counted in CPU and memory), and their broadcast is"
        " the echo socket's (a Channels group send through the layer), or on the chat"
        " room's row a message stored in MySQL first (MySQL counted too); daphne serves the"
        " same app in one process; the peers are one process each, reached directly, with"
        " the broadcast in memory. The sender's result: the peers send one after the"
        " broadcast, the stack's sender gets its own copy.",
        "",
        *reports.versions(info, servers=True),
        "",
    ]
    return "\n".join(out)


def ratio_line(results: list[Result]) -> str:
    """The stack on its own layer against Node ws, from this run."""
    served = {r.server: r.served for r in results}
    ours, node = served.get(OWN_LAYER_SERVER, 0), served.get(NODE_SERVER, 0)
    ratio = f"{ours / node:.2f}" if node else "-"
    return f"{OWN_LAYER_SERVER}: {ours} clients; {NODE_SERVER}: {node}; ratio {ratio}"


def plot(results: list[Result], folder: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4))
    for r in results:
        ax.plot(
            [s.clients for s in r.steps], [s.p95_ms for s in r.steps], marker="o", label=r.server
        )
    ax.axhline(LIMIT_MS, color="grey", linestyle="--", linewidth=1)
    ax.set_xlabel("connected clients")
    ax.set_ylabel(f"broadcast round trip p{LIMIT_PERCENTILE}, ms")
    ax.set_yscale("log")
    ax.legend()
    ax.set_title(f"websocket-shootout method: {CONCURRENT} broadcasts in flight")
    fig.tight_layout()
    fig.savefig(folder / "clients.png")
    plt.close(fig)
    return folder / "clients.png"


def machine() -> dict:
    info = reports.machine()
    info["packages"]["websockets"] = websockets.__version__
    node = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()
    info["servers"]["node"] = f"node {node}, ws {_node_ws_version()}"
    return info


def _node_ws_version() -> str:
    package = NODE_WS / "node_modules" / "ws" / "package.json"
    return json.loads(package.read_text())["version"]


def main() -> int:
    parser = reports.parser(__doc__, MODES, out="bench-results")
    parser.add_argument(
        "--servers",
        type=lambda text: [key.strip() for key in text.split(",") if key.strip()],
        help="comma-separated keys of the servers to run (default: all), e.g. fanout,node",
    )
    args = parser.parse_args()
    chosen = servers_under_test(args.servers)
    require_binaries({"node": "nodejs"})
    if not (NODE_WS / "node_modules" / "ws").is_dir():
        raise StackError(
            f"the Node peer's packages are missing: run `npm ci` in {NODE_WS}"
            " (or `make deps`; npm is the Debian package npm)"
        )
    # The stack's servers inherit this limit: thousands of sockets need as many files.
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    settings = MODES[args.mode]
    info = machine()
    reports.show_machine(info)
    started = time.monotonic()
    results = []
    for server in chosen:
        print(f"{server.name}:")
        with server:
            results.append(measure(server, settings))
    report = markdown(results, info, args.mode, settings)
    data = {"machine": info, "results": [{**asdict(r), "served": r.served} for r in results]}
    print()
    figures = functools.partial(plot, results)
    reports.publish(args.out, "clients", report, data, started, figures, [ratio_line(results)])
    return 0


if __name__ == "__main__":
    sys.exit(main())
