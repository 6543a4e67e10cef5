"""One way to measure, for every experiment: CPU time of the servers and the clients,
a worker's memory per idle socket, percentiles, and the median of repeated runs with
its confidence interval."""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import time

import psutil
import websockets

from proving_ground.clients import ws_url
from proving_ground.clients.load import CLIENT_PROCESSES, run_client
from proving_ground.stacks.native import NativeStack


def cpu_seconds(pids: list[int]) -> float:
    """CPU seconds (user and system) used so far by the processes `pids`; one that is
    gone counts nothing."""
    total = 0.0
    for pid in pids:
        with contextlib.suppress(psutil.NoSuchProcess):
            times = psutil.Process(pid).cpu_times()
            total += times.user + times.system
    return total


def server_cpu(stack: NativeStack) -> dict[str, float]:
    """CPU seconds used so far by nginx's and Gunicorn's (or daphne's) processes."""
    used = {}
    for name in ("nginx", "django"):
        executor = stack.executors.get(name)
        if executor is None or executor.process is None:
            continue
        root = psutil.Process(executor.process.pid)
        used[name] = cpu_seconds([root.pid, *(c.pid for c in root.children(recursive=True))])
    return used


def median_run(runs: int, stack: NativeStack, measure, *args) -> tuple[tuple, dict]:
    """Run `measure(*args)` `runs` times; the run with the median rate (its first value),
    and notes: every run's rate and the cores nginx and Django used in the median run."""
    results = []
    for _ in range(runs):
        before, start = server_cpu(stack), time.monotonic()
        result = measure(*args)
        after, wall = server_cpu(stack), time.monotonic() - start
        cores = {f"{name} cores": round((after[name] - before[name]) / wall, 3) for name in after}
        results.append((result, cores))
    results.sort(key=lambda run: run[0][0])
    result, cores = results[len(results) // 2]
    return result, {"runs": [round(run[0][0]) for run in results], **cores}


def worker_rss(stack: NativeStack) -> int:
    master = psutil.Process(stack.executors["django"].process.pid)
    return sum(child.memory_info().rss for child in master.children())


async def _hold_idle(url, origin, count, ready, release):
    sockets = []
    try:
        for _ in range(count):
            socket = await websockets.connect(url, origin=origin, open_timeout=30)
            await socket.recv()
            sockets.append(socket)
    finally:
        ready.put(len(sockets))  # what was opened, even if a connect failed
    await asyncio.get_running_loop().run_in_executor(None, release.wait)
    for socket in sockets:
        await socket.close()


def idle_memory(stack: NativeStack, count: int, while_open=None) -> float:
    """KiB of worker RSS per idle WebSocket, at `count` sockets (calling `while_open()`
    before they close). Straight to Gunicorn: through nginx, 1000 sockets are 2000 nginx
    connections, past its per-worker limit."""
    context = multiprocessing.get_context("fork")
    ready, release = context.Queue(), context.Event()
    url = ws_url(stack.django_url, "/ws/echo/")
    shares = [count // CLIENT_PROCESSES] * CLIENT_PROCESSES
    base = worker_rss(stack)
    processes = [
        context.Process(
            target=lambda n=n: run_client(_hold_idle(url, stack.http_url, n, ready, release))
        )
        for n in shares
    ]
    for process in processes:
        process.start()
    opened = sum(ready.get(timeout=180) for _ in processes)
    if opened < count:
        release.set()
        raise RuntimeError(f"only {opened} of {count} idle WebSockets opened")
    time.sleep(1)
    loaded = worker_rss(stack)
    try:
        if while_open:
            while_open()
    finally:
        release.set()
    for process in processes:
        process.join(timeout=60)
    return (loaded - base) / opened / 1024
