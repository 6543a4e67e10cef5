"""How long-lived sockets spread over a container's Uvicorn workers.

    make spread          # about 1 minute

On the native stack with two workers, SOCKETS chat sockets through nginx, first opened
one after another and then all at once, with Gunicorn's reuse_port on (a listening
socket per worker, the kernel hashing connections over them: shipped) and off (one
socket shared by the workers, each taking what it wakes up for first). The two sides
differ in REUSE_PORT alone. Prints the sockets each worker holds, and on each side the
benchmark's broadcast (as `make bench`: 200 echo sockets, 50 messages
sent as fast as one sender can, median of 3 runs) to show what else the choice moves."""

from __future__ import annotations

import asyncio
import collections
import json
import resource
import sys
import time
import uuid

from proving_ground import reports
from proving_ground.clients import ChatClient, load
from proving_ground.experiments import configs
from proving_ground.experiments.measure import median_run
from proving_ground.reports.machine import host
from proving_ground.stacks.native import NativeStack

SIDES = {"a socket per worker (shipped)": "1", "one shared socket": "0"}
BROADCAST_RECEIVERS = 200


async def held_by_worker(stack: NativeStack, count: int, at_once: bool) -> collections.Counter:
    """Open `count` chat sockets, one after another or all at once; {worker pid: sockets}."""
    name = f"spread-{uuid.uuid4().hex[:8]}"
    clients = [ChatClient(stack.http_url, name, f"u{n}") for n in range(count)]
    try:
        if at_once:
            await asyncio.gather(*(client.connect(timeout=120) for client in clients))
        else:
            for client in clients:
                await client.connect()
        return collections.Counter(client.worker_pid for client in clients)
    finally:
        await asyncio.gather(*(client.close() for client in clients))


def measure(count: int, workers: int, receivers: int) -> tuple[list[dict], list[dict]]:
    rows, broadcasts = [], []
    for side, reuse_port in SIDES.items():
        env = {"WEB_CONCURRENCY": str(workers), "REUSE_PORT": reuse_port}
        env |= {"DEBUG": "0", **{k: v for k, v in configs.BENCH_ENV.items() if k != "PYTHONPATH"}}
        with NativeStack(django_env=env) as stack:
            pids = stack.gunicorn_workers()
            for at_once in (False, True):
                held = asyncio.run(held_by_worker(stack, count, at_once))
                shares = [held.get(pid, 0) for pid in pids]
                rows.append(
                    {
                        "listening": side,
                        "opened": "all at once" if at_once else "one after another",
                        "per worker": " / ".join(str(n) for n in sorted(shares, reverse=True)),
                        "largest share": f"{100 * max(shares) / count:.1f}%",
                    }
                )
                print("row:", json.dumps(rows[-1]), flush=True)
                time.sleep(1)  # the closed sockets' consumers finish
            url = stack.http_url
            result, notes = median_run(3, stack, load.broadcast, url, url, receivers, 50, None)
            rate, p50, p99, _, dropped, per_worker = result
            broadcasts.append(
                {
                    "listening": side,
                    "deliveries/s": str(round(rate)),
                    "p50 ms": f"{p50:.1f}",
                    "p99 ms": f"{p99:.1f}",
                    "dropped": str(dropped),
                    "receivers per worker": " / ".join(
                        str(n) for n in sorted(per_worker.values(), reverse=True)
                    ),
                }
            )
            print("broadcast:", json.dumps(broadcasts[-1]), flush=True)
    return rows, broadcasts


def print_table(rows: list[dict]) -> None:
    print(*reports.table(list(rows[0]), [list(row.values()) for row in rows]), sep="\n")


def main() -> int:
    parser = reports.parser(__doc__)
    parser.add_argument("--sockets", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--receivers", type=int, default=BROADCAST_RECEIVERS)
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, args.sockets + 1000)), hard))
    reports.show_machine(host())
    rows, broadcasts = measure(args.sockets, args.workers, args.receivers)
    print(
        f"\n{args.sockets} chat sockets through nginx to {args.workers} Uvicorn workers"
        " (native stack); the sides differ only in Gunicorn's reuse_port (REUSE_PORT)\n"
    )
    print_table(rows)
    print(
        f"\nBroadcast through nginx, the same two stacks: {args.receivers} echo"
        " sockets, 50 messages sent as fast as one sender can, median of 3 runs\n"
    )
    print_table(broadcasts)
    return 0


if __name__ == "__main__":
    sys.exit(main())
