"""A client that stops reading in a busy room: when it is closed, what it costs the
worker, whether the room's other sockets notice, and whether it gets every message back.

    make slow-client      # about 1.5 min on a native stack (one Uvicorn worker)

A sender publishes RATE messages a second of about 2 kB to a room of READERS sockets
through nginx, first without, then with one socket that stops reading (a 4 KiB receive
buffer, and it never reads). Prints the readers' p99 delivery time in both phases, the
seconds until the server closed the stalled socket (its log line), the worker's memory
meanwhile, and then the stalled client's account once it reads again and resumes.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
import uuid

import psutil

from proving_ground import reports
from proving_ground.clients import ChatClient
from proving_ground.faults import room_offsets
from proving_ground.stacks.native import NativeStack

RATE = 50
READERS = 20
PHASE_S = 20
# What the server may take to close it: the kernel's and nginx's buffers fill first, then
# a send waits WS_SEND_TIMEOUT (10 s).
CLOSE_WITHIN_S = 150
TEXT = "x" * 1950  # with its time stamp, about 2 kB (a message holds 2000 characters)


async def publish(sender: ChatClient, stop: asyncio.Event) -> None:
    n = 0
    while not stop.is_set():
        text = f"{time.time():.6f} {n} {TEXT}"
        await sender.send_frame({"type": "message", "nickname": "pub", "text": text})
        n += 1
        await asyncio.sleep(1 / RATE)


async def read(client: ChatClient, delays: list[float], stop: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            frame = await client.next_frame(timeout=1)
        except TimeoutError:
            continue
        if frame.get("type") == "message":
            delays.append(time.time() - float(frame["text"].split(" ", 1)[0]))


def p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100)[98] * 1000 if len(values) > 100 else float("nan")


async def phase(readers, sender, seconds: float, until=None) -> tuple[list[float], float]:
    """Publish for `seconds` (or until `until()` is true, up to that); the readers'
    delivery delays and how long it ran."""
    stop, delays = asyncio.Event(), []
    tasks = [asyncio.create_task(read(c, delays, stop)) for c in readers]
    tasks.append(asyncio.create_task(publish(sender, stop)))
    start = time.monotonic()
    while time.monotonic() - start < seconds and not (until and until()):
        await asyncio.sleep(0.2)
    stop.set()
    await asyncio.gather(*tasks)
    return delays, time.monotonic() - start


async def measure(stack: NativeStack) -> dict:
    name = f"slow-{uuid.uuid4().hex[:8]}"
    worker = psutil.Process(stack.gunicorn_workers()[0])
    readers = [ChatClient(stack.http_url, name, f"r{n}") for n in range(READERS)]
    for client in readers:
        await client.connect()
    sender = readers[0]
    calm, _ = await phase(readers, sender, PHASE_S)
    log_start = stack.log_path("django").stat().st_size
    rss_before = worker.memory_info().rss

    def closed() -> bool:
        with stack.log_path("django").open("rb") as log:
            log.seek(log_start)
            return b"too slow to read" in log.read()

    stalled = ChatClient(stack.http_url, name, "stalled")
    await stalled.connect(stalling=True)
    rss_peak, stall_start = rss_before, time.monotonic()
    sampler_stop = asyncio.Event()

    async def sample():
        nonlocal rss_peak
        while not sampler_stop.is_set():
            rss_peak = max(rss_peak, worker.memory_info().rss)
            await asyncio.sleep(0.5)

    sampler = asyncio.create_task(sample())
    busy, ran = await phase(readers, sender, CLOSE_WITHIN_S, until=closed)
    close_s = time.monotonic() - stall_start if closed() else None
    sampler_stop.set()
    await sampler
    # The stalled client reads again: what was buffered, then the close; then it resumes.
    code = None
    try:
        while True:
            await stalled.next_frame(timeout=10)
    except Exception as end:  # ConnectionClosed (its code) or a timeout
        code = getattr(getattr(end, "rcvd", None), "code", type(end).__name__)
    stored = room_offsets(stack, name)
    await stalled.catch_up(max(stored, default=0), timeout=30)
    account = stalled.account(stored)
    for client in [*readers, stalled]:
        await client.close()
    return {
        "calm_p99_ms": p99(calm),
        "busy_p99_ms": p99(busy),
        "calm_n": len(calm),
        "busy_n": len(busy),
        "busy_s": ran,
        "close_s": close_s,
        "close_code": code,
        "rss_before_mib": rss_before / 2**20,
        "rss_peak_mib": rss_peak / 2**20,
        "account": account,
    }


def report(figures: dict) -> str:
    a = figures["account"]
    close = "not closed" if figures["close_s"] is None else f"{figures['close_s']:.1f} s"
    return "\n".join(
        [
            f"room: {READERS} readers through nginx, {RATE} messages/s of 2 kB, one Uvicorn worker",
            f"readers' p99 delivery without a stalled socket: {figures['calm_p99_ms']:.1f} ms"
            f" ({figures['calm_n']} deliveries in {PHASE_S} s)",
            f"readers' p99 delivery with a stalled socket:    {figures['busy_p99_ms']:.1f} ms"
            f" ({figures['busy_n']} deliveries in {figures['busy_s']:.0f} s, until it was closed)",
            f"stalled socket closed by the server after: {close}"
            f" (its client read code {figures['close_code']} once it read again)",
            f"worker memory: {figures['rss_before_mib']:.1f} MiB before the stall, peak"
            f" {figures['rss_peak_mib']:.1f} MiB"
            f" ({figures['rss_peak_mib'] - figures['rss_before_mib']:+.1f} MiB)",
            f"stalled client after resuming: {a.expected} stored since it joined, {a.live} live,"
            f" {a.resumed} resumed; gaps {a.gaps}, duplicates {a.duplicates},"
            f" out of order {a.out_of_order}; resumes recovered {a.recovered},"
            f" not recovered {a.not_recovered}",
        ]
    )


def main() -> int:
    reports.parser(__doc__).parse_args()
    env = {"WEB_CONCURRENCY": "1", "WS_RATE_LIMIT": str(RATE * 2), "WS_RATE_BURST": str(RATE)}
    with NativeStack(django_env=env) as stack:
        figures = asyncio.run(measure(stack))
    print(report(figures))
    ok = figures["close_s"] is not None and figures["account"].clean and figures["account"].expected
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
