"""A reconnect storm in containers: 500 sockets in 10 rooms, `docker compose restart
django`, and every one reconnects at once and resumes.

    make storm        # the development stack in containers; about 3 min

Prints the scenario's row (every client accounted for against MySQL: gaps, duplicates,
out of order) and the figures: seconds from the restart until the last socket had
resumed, and MySQL's CPU meanwhile.
"""

from __future__ import annotations

import asyncio
import sys
import time

import psutil

from proving_ground import faults, reports
from proving_ground.clients import ChatClient
from proving_ground.stacks.docker import DockerStack

ROOMS = 10
PER_ROOM = 50
# Sent in each room by its first socket once it is back, while the others still reconnect.
WHILE_RECONNECTING = 5


def cpu_seconds(pid: int) -> float:
    """CPU time of a process and its children (a container's processes, from its init)."""
    parent = psutil.Process(pid)
    times = [p.cpu_times() for p in [parent, *parent.children(recursive=True)]]
    return sum(t.user + t.system for t in times)


async def reconnect_storm(stack: DockerStack, outcome: faults.Outcome) -> None:
    """500 sockets in 10 rooms; django restarted; all reconnect at once and resume."""
    rooms = [faults.room() for _ in range(ROOMS)]
    clients = [ChatClient(stack.http_url, name, f"u{n}") for name in rooms for n in range(PER_ROOM)]
    for start in range(0, len(clients), 50):
        await asyncio.gather(*(c.reconnect(within=60) for c in clients[start : start + 50]))
    talkers = clients[::PER_ROOM]
    for talker in talkers:
        await talker.say("before the restart")
    mysql_pid = stack.container("mysql")["State"]["Pid"]
    cpu_before, started = cpu_seconds(mysql_pid), time.monotonic()
    restart = asyncio.create_task(asyncio.to_thread(stack.compose, "restart", "django"))
    back_at: list[float] = []

    async def come_back(client: ChatClient) -> None:
        await faults.closed_within(client, 60)
        await client.reconnect(within=180)
        back_at.append(time.monotonic() - started)
        if client in talkers:
            for n in range(WHILE_RECONNECTING):
                await client.say(f"while the others reconnect {n}", timeout=30)

    await asyncio.gather(*(come_back(client) for client in clients))
    last = max(back_at)
    cpu = cpu_seconds(mysql_pid) - cpu_before
    await restart
    await faults.finish(stack, outcome, clients)
    outcome.recovery_s = last
    outcome.detail = (
        f"{len(clients)} sockets in {ROOMS} rooms; the last resumed {last:.1f} s after"
        f" `docker compose restart django` (the first after {min(back_at):.1f} s);"
        f" MySQL used {cpu:.1f} CPU-seconds meanwhile ({100 * cpu / last:.0f}% of a core)"
    )


def main() -> int:
    reports.parser(__doc__).parse_args()
    with DockerStack() as stack:
        outcome = asyncio.run(faults.run(reconnect_storm, stack, "fault"))
    print(faults.table([outcome]))
    return 0 if outcome.survived else 1


if __name__ == "__main__":
    sys.exit(main())
