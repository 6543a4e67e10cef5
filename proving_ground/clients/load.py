"""Load clients: WebSocket echo and broadcast clients over several processes, each on
uvloop so that it takes less of the CPU it shares with the servers, and wrk for HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import json
import multiprocessing
import re
import resource
import subprocess
import time

import websockets

from proving_ground.clients import ws_url
from proving_ground.reports import percentile

BROADCAST_RATE = 50  # messages a second from the one sender
CLIENT_PROCESSES = 2
_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def wrk(url: str, seconds: int, connections: int = 50) -> tuple[float, float, float, float]:
    """(requests/s, p50 ms, p99 ms, client cores) from Debian's wrk."""
    before, start = children_cpu(), time.monotonic()
    out = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", url],
        capture_output=True,
        text=True,
        timeout=seconds + 30,
        check=True,
    ).stdout
    cores = (children_cpu() - before) / (time.monotonic() - start)
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    latency = {
        q: float(v) * _UNITS[u] for q, v, u in re.findall(r"\s(50|99)%\s+([\d.]+)(us|ms|s)\b", out)
    }
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        raise RuntimeError(f"wrk got {errors.group(1)} error responses from {url}")
    return rate, latency["50"], latency["99"], cores


async def _echo_client(url: str, origin: str, sockets: int, seconds: float, bare: bool):
    latencies: list[float] = []

    async def one():
        async with websockets.connect(url, origin=origin, max_queue=None) as socket:
            if not bare:
                await socket.recv()  # Django's echo consumer greets first
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                start = time.perf_counter()
                await socket.send('{"type": "echo", "text": "x"}')
                await socket.recv()
                latencies.append((time.perf_counter() - start) * 1000)

    await asyncio.gather(*(one() for _ in range(sockets)))
    return latencies


def run_client(coroutine):
    """Run a load client's event loop on uvloop (installed with uvicorn[standard]): the
    client then takes less of the CPU it shares with the servers."""
    import uvloop

    return uvloop.run(coroutine)


def _echo_process(args):
    return run_client(_echo_client(*args))


def ws_echo(base: str, origin: str, seconds: int, sockets: int = 20, bare: bool = False):
    """(round trips/s, p50, p99, client cores) for sockets doing ping-pong."""
    url = ws_url(base, "/ws/echo/")
    before, start = children_cpu(), time.monotonic()
    with multiprocessing.get_context("fork").Pool(CLIENT_PROCESSES) as pool:
        per_process = sockets // CLIENT_PROCESSES
        results = pool.map(
            _echo_process, [(url, origin, per_process, seconds, bare)] * CLIENT_PROCESSES
        )
    wall = time.monotonic() - start
    latencies = [value for result in results for value in result]
    cores = (children_cpu() - before) / wall
    return len(latencies) / seconds, percentile(latencies, 50), percentile(latencies, 99), cores


async def _receivers(url, origin, count, expected, ready, results):
    sockets = []
    workers: dict[int, int] = {}
    for _ in range(count):
        socket = await websockets.connect(url, origin=origin, max_queue=None, open_timeout=30)
        hello = json.loads(await socket.recv())
        workers[hello["pid"]] = workers.get(hello["pid"], 0) + 1
        sockets.append(socket)
    ready.put(workers)
    latencies: list[float] = []
    last = [0.0]

    async def listen(socket):
        got = 0
        try:
            while got < expected:
                async with asyncio.timeout(5):
                    frame = json.loads(await socket.recv())
                if frame.get("type") == "broadcast" and frame["text"].startswith("bench:"):
                    sent = float(frame["text"].split(":", 1)[1])
                    now = time.time()
                    latencies.append((now - sent) * 1000)
                    last[0] = max(last[0], now)
                    got += 1
        except TimeoutError:
            pass

    await asyncio.gather(*(listen(socket) for socket in sockets))
    for socket in sockets:
        await socket.close()
    results.put((latencies, last[0]))


def _receiver_process(url, origin, count, expected, ready, results):
    run_client(_receivers(url, origin, count, expected, ready, results))


async def _send(url, origin, messages, rate, expect=None) -> float:
    """Send `messages` broadcasts at `rate` a second (None: as fast as the socket takes),
    then wait for `expect` broadcasts (all senders' copies) to come back."""
    async with websockets.connect(url, origin=origin, max_queue=None) as socket:
        await socket.recv()
        first = time.time()
        for n in range(messages):
            if rate:
                await asyncio.sleep(max(0.0, first + n / rate - time.time()))
            await socket.send(json.dumps({"type": "broadcast", "text": f"bench:{time.time()}"}))
        # The sender is in the group too: stay until its own copies are back, so no
        # frame is still queued in its consumer when the socket closes.
        echoed = 0
        with contextlib.suppress(TimeoutError):
            while echoed < (expect or messages):
                async with asyncio.timeout(10):
                    frame = json.loads(await socket.recv())
                echoed += frame.get("type") == "broadcast"
        return first


async def _senders(url, origin, senders, messages, rate) -> float:
    expect = messages * senders
    firsts = await asyncio.gather(
        *(_send(url, origin, messages, rate, expect) for _ in range(senders))
    )
    return min(firsts)


def broadcast(
    base: str,
    origin: str,
    receivers: int,
    messages: int,
    rate: float | None,
    senders: int = 1,
):
    """`senders` senders of `messages` each, `receivers` sockets over CLIENT_PROCESSES
    processes."""
    url = ws_url(base, "/ws/echo/")
    context = multiprocessing.get_context("fork")
    ready, results = context.Queue(), context.Queue()
    shares = [
        receivers // CLIENT_PROCESSES + (i < receivers % CLIENT_PROCESSES)
        for i in range(CLIENT_PROCESSES)
    ]
    processes = [
        context.Process(
            target=_receiver_process,
            args=(url, origin, share, messages * senders, ready, results),
        )
        for share in shares
        if share
    ]
    before, start = children_cpu(), time.monotonic()
    for process in processes:
        process.start()
    spread: dict[int, int] = {}
    for _ in processes:
        for pid, count in ready.get(timeout=120).items():
            spread[pid] = spread.get(pid, 0) + count
    first = run_client(_senders(url, origin, senders, messages, rate))
    latencies, last = [], first
    for _ in processes:
        got, finished = results.get(timeout=120)
        latencies += got
        last = max(last, finished)
    for process in processes:
        process.join(timeout=30)
    cores = (children_cpu() - before) / (time.monotonic() - start)
    delivered = len(latencies)
    rate = delivered / max(last - first, 1e-6)
    dropped = receivers * messages * senders - delivered
    return rate, percentile(latencies, 50), percentile(latencies, 99), cores, dropped, spread
