"""Scale-out figures on this machine: what nginx's per-request DNS costs (no upstream
keepalive), and the ladder's rungs in containers, each with one broadcast load.

    make bench-scale     # about 8 minutes; prints the tables docs/scaling.md quotes

Every rung runs the same load (RECEIVERS sockets through nginx, MESSAGES broadcasts as
fast as one sender can send) on the development images with DEBUG off, and differs from
the first rung only in what its name says. The Sentinel rung then kills the Redis primary
and reports the failover; the swarm rung deploys docker-stack.yml, kills a task and runs
a rolling update while clients chat."""

from __future__ import annotations

import asyncio
import json
import re
import sys
import time
import uuid

from proving_ground import faults, reports
from proving_ground.clients import ChatClient, load, one_per_server
from proving_ground.experiments import configs, measure
from proving_ground.reports.machine import host
from proving_ground.stacks.compose import COMPOSE_FILE
from proving_ground.stacks.docker import DockerStack
from proving_ground.stacks.native import LOCALHOST, NativeStack
from proving_ground.stacks.swarm import HOST, SwarmStack, rolling_update, stored_in_history

RECEIVERS = 200
MESSAGES = 50
# DEBUG off as in production; the echo socket (the broadcast load) stays on.
ENV = {"DEBUG": "0", **{k: v for k, v in configs.BENCH_ENV.items() if k != "PYTHONPATH"}}
LADDER = {
    "1 container, 3 workers": ((), 1, {"WEB_CONCURRENCY": "3"}),
    "3 replicas, 1 worker each": ((), 3, {"WEB_CONCURRENCY": "1"}),
    "3 replicas, Redis in 2 shards": (("docker-compose.sharded.yml",), 3, {"WEB_CONCURRENCY": "1"}),
    "3 replicas, Redis with Sentinel": (
        ("docker-compose.sentinel.yml",),
        3,
        {"WEB_CONCURRENCY": "1"},
    ),
}
KEEPALIVE_UPSTREAM = """
upstream django_keepalive {
    server %s;
    keepalive 32;
    keepalive_timeout 60s;
}
"""


class KeepaliveStack(NativeStack):
    """The native stack with nginx's former upstream block (keepalive 32) instead of
    per-request resolving: the one difference the keepalive comparison measures."""

    def write_nginx_config(self):
        main = super().write_nginx_config()
        site = main.parent / "conf.d" / "default.conf"
        text = site.read_text()
        target = f"{LOCALHOST}:{self.django_port}"
        text, count = re.subn(
            r"proxy_pass http://\$django_upstream;", "proxy_pass http://django_keepalive;", text
        )
        if not count:
            raise RuntimeError("the template's proxy_pass changed; update KeepaliveStack")
        site.write_text(KEEPALIVE_UPSTREAM % target + text)
        return main


def keepalive(seconds: int, runs: int) -> list[tuple]:
    rows = []
    for name, cls in (
        ("per-request DNS (shipped)", NativeStack),
        ("upstream keepalive", KeepaliveStack),
    ):
        with cls(django_env=ENV) as stack:
            load.wrk(stack.http_url + "/api/ping", 1)  # warm-up
            result, notes = measure.median_run(
                runs, stack, load.wrk, stack.http_url + "/api/ping", seconds
            )
        rate, p50, p99, _ = result
        rows.append((name, rate, p50, p99, notes.get("nginx cores"), notes.get("django cores")))
    return rows


def redis_cpu(stack: DockerStack, services: list[str]) -> float:
    total = 0.0
    for service in services:
        info = stack.exec(service, "redis-cli", "info", "cpu").stdout
        total += sum(float(v) for v in re.findall(r"used_cpu_(?:sys|user):([\d.]+)", info))
    return total


def rung(name: str, runs: int) -> dict:
    files, replicas, env = LADDER[name]
    stack = DockerStack(files=(COMPOSE_FILE.name, *files), environment={"django": {**ENV, **env}})
    try:
        stack.up("--scale", f"django={replicas}")  # all replicas at once, as users would
        services = [s for s in stack.config()["services"] if re.fullmatch(r"redis(-\d+)?", s)]
        load.broadcast(stack.http_url, stack.http_url, 20, 5, None)  # warm-up
        before, start = redis_cpu(stack, services), time.monotonic()
        results = sorted(
            load.broadcast(stack.http_url, stack.http_url, RECEIVERS, MESSAGES, None)
            for _ in range(runs)
        )
        redis_cores = (redis_cpu(stack, services) - before) / (time.monotonic() - start)
        rate, p50, p99, _, dropped, _ = results[len(results) // 2]  # the median rate's run
        row = {
            "rung": name,
            "deliveries/s": round(rate),
            "per worker": round(rate / (replicas * int(env["WEB_CONCURRENCY"]))),
            "p50 ms": round(p50, 1),
            "p99 ms": round(p99, 1),
            "Redis cores": round(redis_cores, 3),
            "dropped": dropped,
        }
        if "docker-compose.sentinel.yml" in files:
            outcome = asyncio.run(faults.run(faults.redis_primary_killed, stack, "fault"))
            row["failover"] = (
                f"{outcome.recovery_s:.1f} s until broadcasts flow; {outcome.detail};"
                f" acknowledged {len(outcome.acknowledged)}, stored {outcome.stored}"
                if outcome.survived
                else f"FAILED: {outcome.detail}"
            )
    finally:
        stack.down()
    return row


def swarm_rung(replicas: int = 3) -> dict:
    """docker-stack.yml on a single-node swarm: seconds to deploy, to replace a killed
    task, and for a rolling update while clients chat (what was lost: nothing, or it
    says so)."""
    started = time.monotonic()
    with SwarmStack(replicas=replicas) as swarm:
        deployed = time.monotonic() - started

        async def measure() -> dict:
            origin = f"https://{HOST}"
            name = f"scale-{uuid.uuid4().hex[:8]}"
            clients = await one_per_server(swarm.http_url, name, swarm.django_hostnames(), origin)
            swarm.kill_django(clients[0].server)
            killed = time.monotonic()
            await asyncio.sleep(2)
            await asyncio.to_thread(swarm.wait_healthy, 180)
            replaced = time.monotonic() - killed
            survivors_open = sum(client.is_open for client in clients[1:])
            for client in clients:
                await client.close()
            chatters = [
                ChatClient(swarm.http_url, f"{name}-{n}", f"user{n}", origin=origin)
                for n in range(4)
            ]
            update = await rolling_update(swarm, chatters)
            acknowledged = sum(len(client.acknowledged) for client in chatters)
            kept = [await stored_in_history(swarm, client, origin) for client in chatters]
            for client in chatters:
                await client.close()
            return {
                "deploy s": round(deployed),
                "killed task replaced s": round(replaced, 1),
                "other sockets open": f"{survivors_open} of {len(clients) - 1}",
                "rolling update s": round(update["seconds"]),
                "reconnects": update["reconnects"],
                "acknowledged": acknowledged,
                "lost": "none" if all(kept) else "SOME",
            }

        return asyncio.run(measure())


def main() -> int:
    parser = reports.parser(__doc__)
    parser.add_argument("--seconds", type=int, default=5, help="per keepalive run")
    parser.add_argument("--runs", type=int, default=3, help="each figure is the median run")
    parser.add_argument("--no-swarm", dest="swarm", action="store_false")
    parser.add_argument("--rungs", nargs="*", default=list(LADDER), choices=list(LADDER))
    args = parser.parse_args()
    reports.show_machine(host())
    started = time.monotonic()
    ka = keepalive(args.seconds, args.runs)
    print(
        f"\nHTTP through nginx to /api/ping (wrk, 50 connections, {args.seconds} s,"
        f" median of {args.runs}); the only difference: how nginx reaches Django\n"
    )
    print(
        *reports.table(
            ["nginx to Django", "requests/s", "p50 ms", "p99 ms", "nginx cores", "Django cores"],
            [[n, round(r), round(a, 2), round(b, 2), c, d] for n, r, a, b, c, d in ka],
        ),
        sep="\n",
    )
    rows = []
    for name in args.rungs:
        rows.append(rung(name, args.runs))
        print("rung:", json.dumps(rows[-1]), flush=True)
    swarm = swarm_rung() if args.swarm else None
    print(
        f"\nBroadcast in containers: {RECEIVERS} sockets through nginx, {MESSAGES} messages"
        f" sent as fast as one sender can, median of {args.runs} runs; each rung differs from"
        " the first only as named\n"
    )
    header = ["rung", "deliveries/s", "per worker", "p50 ms", "p99 ms", "Redis cores", "dropped"]
    print(*reports.table(header, [[row[h] for h in header] for row in rows]), sep="\n")
    for row in rows:
        if "failover" in row:
            print(f"\nSentinel failover (primary killed under {row['rung']}): {row['failover']}")
    if swarm:
        print(
            "\nSwarm (docker-stack.yml, 3 django tasks, one node; deploy includes building the"
            " production image): the same processes as 3 replicas, so the same broadcast"
            " figures; what it adds\n"
        )
        print(*reports.table(list(swarm), [list(swarm.values())]), sep="\n")
    print(f"\nfinished in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
