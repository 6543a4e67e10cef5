"""What one broadcast costs a worker that fans it out: `make bench-fanout`.

    python -m proving_ground bench-fanout [--mode smoke|quick] [--out DIR]

One Uvicorn worker (WEB_CONCURRENCY=1), reached on Django's own port (no nginx), holds
`sockets` WebSockets in one group, from client processes cheap enough that the worker
saturates first: a bare WebSocket client on asyncio streams that only counts the frames
it is sent. One sender keeps `in_flight` broadcasts going at once for `seconds`; a
broadcast is complete when every socket has it. For each channel layer and each route:

- the echo socket's broadcast (`/ws/echo/`: group_send, then each consumer's send), and
- a chat room (`/ws/talk/<room>/`: each message stored in MySQL with its offset, then
  sent to the room through the stream's ordering),

it prints deliveries a second, the p50 and p95 of a broadcast's completion, and the CPU
per delivery of the worker and of Redis (and of the clients, to show they kept up).
Traffic goes to 127.0.0.1 only, and every run is bounded in time.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import multiprocessing
import os
import statistics
import sys
import time
import uuid
from dataclasses import asdict, dataclass, field
from urllib.parse import urlsplit

from proving_ground import reports
from proving_ground.experiments.bench_clients import client_reports, stop_clients
from proving_ground.experiments.configs import start_stack
from proving_ground.experiments.measure import cpu_seconds
from proving_ground.reports import percentile

# Every layer CHANNEL_LAYER selects: channels-redis's two and the stack's own.
LAYERS = ("core", "pubsub", "fanout")
MODES = {
    # For the test suite: proves the command end to end, measures nothing worth quoting.
    "smoke": {"sockets": 40, "seconds": 2, "in_flight": 4, "layers": LAYERS},
    "quick": {"sockets": 1000, "seconds": 10, "in_flight": 4, "layers": LAYERS},
}
CLIENT_PROCESSES = 2
# One worker process: the cost per socket is what it pays for each of its own.
STACK_ENV = {"WEB_CONCURRENCY": "1"}
ROUTES = {
    # route name: (path, the frame the sender sends with {n} its broadcast's number)
    "echo": ("/ws/echo/", '{{"type": "broadcast", "text": "b{n}"}}'),
    "chat room": ("/ws/talk/{room}/", '{{"type": "message", "nickname": "fan", "text": "b{n}"}}'),
}
OPEN_TIMEOUT_S = 30
BROADCAST_TIMEOUT_S = 30


# -- a bare WebSocket client ---------------------------------------------------------------


class Socket:
    """A client WebSocket on asyncio streams, frames read one by one with no parsing of
    their payload: cheap enough per frame that the server saturates first."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, url: str, origin: str) -> Socket:
        parts = urlsplit(url)
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(
            (
                f"GET {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
                "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                f"Origin: {origin}\r\n\r\n"
            ).encode()
        )
        head = await reader.readuntil(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 101"):
            writer.close()
            raise ConnectionError(f"handshake refused: {head.splitlines()[0].decode()}")
        return cls(reader, writer)

    async def frame(self) -> tuple[int, bytes]:
        """The next data frame's opcode and payload; pings answered on the way."""
        while True:
            first, second = await self.reader.readexactly(2)
            length = second & 0x7F
            if length == 126:
                length = int.from_bytes(await self.reader.readexactly(2), "big")
            elif length == 127:
                length = int.from_bytes(await self.reader.readexactly(8), "big")
            payload = await self.reader.readexactly(length) if length else b""
            opcode = first & 0x0F
            if opcode == 0x9:  # ping: the server closes a socket that never answers
                self.send(payload, opcode=0xA)
            elif opcode == 0x8:
                code = int.from_bytes(payload[:2], "big") if payload else None
                raise ConnectionError(f"closed by the server ({code})")
            else:
                return opcode, payload

    def send(self, payload: bytes, opcode: int = 0x1) -> None:
        """A masked frame, as a client must send (payloads under 64 KiB)."""
        mask = os.urandom(4)
        size = len(payload)
        header = bytes([0x80 | opcode])
        header += bytes([0x80 | size]) if size < 126 else bytes([0x80 | 126]) + size.to_bytes(2)
        masked = bytes(byte ^ mask[i & 3] for i, byte in enumerate(payload))
        self.writer.write(header + mask + masked)

    def close(self) -> None:
        self.writer.close()


# -- the receivers, in processes of their own --------------------------------------------


async def _receivers(url: str, origin: str, count: int, pipe) -> None:
    """`count` sockets; reports ("ready",) once all have their first frame, then, for
    each broadcast, ("done", its number, when the last of them got it)."""
    sockets = []
    for _ in range(count):
        socket = await asyncio.wait_for(Socket.open(url, origin), OPEN_TIMEOUT_S)
        await asyncio.wait_for(socket.frame(), OPEN_TIMEOUT_S)  # hello, or the history
        sockets.append(socket)
    pipe.send(("ready",))
    got: dict[int, int] = {}

    async def read(socket: Socket) -> None:
        received = 0
        while True:
            await socket.frame()  # broadcasts arrive in order on each socket
            received += 1
            got[received] = got.get(received, 0) + 1
            if got[received] == count:
                pipe.send(("done", received, time.monotonic()))
                del got[received]

    readers = [asyncio.create_task(read(socket)) for socket in sockets]
    stop = asyncio.get_running_loop().run_in_executor(None, pipe.recv)
    done, _ = await asyncio.wait([stop, *readers], return_when=asyncio.FIRST_COMPLETED)
    for task in readers:
        task.cancel()
    for socket in sockets:
        socket.close()
    for task in done:
        if task is not stop and task.exception():
            pipe.send(("error", repr(task.exception())))


def _receiver_process(url: str, origin: str, count: int, pipe) -> None:
    try:
        asyncio.run(_receivers(url, origin, count, pipe))
    except Exception as error:  # reported, so the parent fails with the reason
        pipe.send(("error", repr(error)))


# -- one measurement ---------------------------------------------------------------------


@dataclass
class Result:
    layer: str
    route: str
    sockets: int
    broadcasts: int = 0
    deliveries_per_s: float = 0.0
    p50_ms: float | None = None
    p95_ms: float | None = None
    worker_us: float = 0.0  # CPU per delivery
    redis_us: float = 0.0
    client_us: float = 0.0
    worker_cores: float = 0.0  # near 1: the worker was the bottleneck, not the clients
    client_cores: float = 0.0
    completions_ms: list = field(default_factory=list, repr=False)


async def _broadcast(stack, layer: str, route: str, settings: dict, pids: dict) -> Result:
    path, frame = ROUTES[route]
    path = path.format(room=f"fanout-{uuid.uuid4().hex[:8]}")
    url = f"ws://{urlsplit(stack.django_url).netloc}{path}"
    origin, sockets = stack.http_url, settings["sockets"]
    result = Result(layer, route, sockets)
    context = multiprocessing.get_context("fork")
    shares = [
        sockets // CLIENT_PROCESSES + (i < sockets % CLIENT_PROCESSES)
        for i in range(CLIENT_PROCESSES)
    ]
    pipes, processes, sender, drain = [], [], None, None
    for share in shares:
        mine, theirs = context.Pipe()
        process = context.Process(target=_receiver_process, args=(url, origin, share, theirs))
        process.start()
        pipes.append(mine)
        processes.append(process)
    try:
        ready: set[int] = set()
        while len(ready) < len(pipes):  # every socket open, its first frame read
            ready |= {index for index, _ in client_reports(pipes, OPEN_TIMEOUT_S * 4)}
        sender = await Socket.open(url, origin)
        await sender.frame()
        drain = asyncio.create_task(_drain(sender))
        client = [process.pid for process in processes]
        before = {k: cpu_seconds(v) for k, v in {**pids, "client": client}.items()}
        started = time.monotonic()
        sent_at: dict[int, float] = {}
        reports: dict[int, list[float]] = {}
        number = 0
        while True:
            now = time.monotonic()
            if now - started < settings["seconds"]:
                while len(sent_at) - len(result.completions_ms) < settings["in_flight"]:
                    number += 1
                    sent_at[number] = time.monotonic()
                    sender.send(frame.format(n=number).encode())
            elif len(result.completions_ms) == number:
                break
            for _, (_, done, at) in await asyncio.to_thread(
                client_reports, pipes, BROADCAST_TIMEOUT_S
            ):
                reports.setdefault(done, []).append(at)
                if len(reports[done]) == len(pipes):
                    completed = max(reports.pop(done))
                    result.completions_ms.append((completed - sent_at[done]) * 1000)
        elapsed = time.monotonic() - started
        after = {k: cpu_seconds(v) for k, v in {**pids, "client": client}.items()}
    finally:
        if drain:
            drain.cancel()
        if sender:
            sender.close()
        stop_clients(pipes, processes)
    deliveries = number * sockets
    result.broadcasts = number
    result.deliveries_per_s = round(deliveries / elapsed, 1)
    result.p50_ms = round(statistics.median(result.completions_ms), 1)
    result.p95_ms = round(percentile(result.completions_ms, 95), 1)
    for who in ("worker", "redis", "client"):
        used = after[who] - before[who]
        setattr(result, f"{who}_us", round(used / deliveries * 1e6, 1))
        if who != "redis":
            setattr(result, f"{who}_cores", round(used / elapsed, 2))
    return result


async def _drain(socket: Socket) -> None:
    with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
        while True:
            await socket.frame()


def measure(settings: dict, log=print) -> list[Result]:
    results = []
    for layer in settings["layers"]:
        with start_stack("ours", layer=layer, env=STACK_ENV) as stack:
            (worker,) = stack.gunicorn_workers()
            pids = {"worker": [worker], "redis": [stack.executors["redis"].process.pid]}
            for route in ROUTES:
                result = asyncio.run(_broadcast(stack, layer, route, settings, pids))
                log(format_result(result), flush=True)
                results.append(result)
    return results


# -- the report ----------------------------------------------------------------------------


def format_result(r: Result) -> str:
    return (
        f"{r.layer:<8} {r.route:<10} {r.deliveries_per_s:>9.0f} deliveries/s"
        f"  p50 {r.p50_ms} ms  p95 {r.p95_ms} ms  CPU per delivery: worker {r.worker_us} us,"
        f" Redis {r.redis_us} us, clients {r.client_us} us; cores: worker {r.worker_cores},"
        f" clients {r.client_cores}"
    )


def markdown(results: list[Result], info: dict, settings: dict, mode: str) -> str:
    lines = [
        *reports.heading(f"One worker's fan-out ({mode} mode)", info),
        "",
        *reports.versions(info),
        "",
        f"One Uvicorn worker on Django's port, {settings['sockets']} sockets in one group,"
        f" {settings['in_flight']} broadcasts in flight for {settings['seconds']} s; a"
        " broadcast is complete when every socket has it. What differs between the rows:"
        " the channel layer (CHANNEL_LAYER), and the route (the echo socket's group_send,"
        " or a chat room's message stored in MySQL and sent in order).",
        "",
    ]
    header = ["layer", "route", "deliveries/s", "p50 ms", "p95 ms", "worker us/delivery"]
    header += ["Redis us/delivery", "clients us/delivery", "worker cores", "client cores"]
    rows = [
        [r.layer, r.route, f"{r.deliveries_per_s:.0f}", r.p50_ms, r.p95_ms, r.worker_us]
        + [r.redis_us, r.client_us, r.worker_cores, r.client_cores]
        for r in results
    ]
    return "\n".join(lines + reports.table(header, rows, "ll" + "r" * 8)) + "\n"


def main() -> int:
    args = reports.parser(__doc__, MODES, out="bench-results").parse_args()
    settings = MODES[args.mode]
    started = time.monotonic()
    info = reports.machine()
    results = measure(settings)
    report = markdown(results, info, settings, args.mode)
    data = {"machine": info, "settings": settings, "results": [asdict(r) for r in results]}
    reports.publish(args.out, "fanout", report, data, started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
