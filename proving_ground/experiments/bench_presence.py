"""What presence costs: `make bench-presence`.

    python -m proving_ground bench-presence [--mode smoke|quick] [--out DIR]

The native stack as shipped (two Gunicorn workers) twice, both running at once: presence
on (the default) and off (REALTIME_PRESENCE=0; nothing else differs). On each in turn,
through nginx:

1. Redis commands per socket per minute: chat sockets spread over ROOMS rooms held idle
   for a window; Redis's count of the commands it processed in that window (INFO
   commandstats, by command), less the same window with no socket open, per socket and
   minute. Presence costs each worker one pipelined refresh per room every third of
   REALTIME_PRESENCE_TTL, whatever the room's number of sockets.
2. Broadcast throughput: receivers in one room (each asked for presence, as the page
   does) and one sender posting messages without waiting (each stored in MySQL, then
   sent to the room); deliveries per second from the first send to the last delivery,
   the median of the rounds, which alternate which side goes first.
3. Joining: the seconds until every one of the idle sockets has connected and read its
   history, each joining the room's presence on one side.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field

import redis
import websockets

from proving_ground import reports
from proving_ground.clients import ws_url
from proving_ground.experiments.configs import start_stack
from proving_ground.faults import SHIPPED_LAYER

MODES = {
    # For the test suite: proves the command end to end.
    "smoke": {"sockets": 30, "window": 5, "receivers": 10, "messages": 10, "rounds": 2},
    "quick": {"sockets": 500, "window": 60, "receivers": 100, "messages": 300, "rounds": 4},
}
ROOMS = 10
SIDES = {"presence on": {}, "presence off": {"REALTIME_PRESENCE": "0"}}


@dataclass
class Side:
    name: str
    sockets: int
    window_s: float
    commands_per_socket_minute: float = 0.0
    by_command: dict[str, float] = field(default_factory=dict)  # per socket per minute
    join_s: float = 0.0
    deliveries_per_s: list[float] = field(default_factory=list)  # one per round

    @property
    def deliveries(self) -> float:
        return statistics.median(self.deliveries_per_s)


def command_calls(client: redis.Redis) -> dict[str, int]:
    return {
        name.removeprefix("cmdstat_"): stats["calls"]
        for name, stats in client.info("commandstats").items()
    }


async def commands_in(client: redis.Redis, seconds: float) -> dict[str, int]:
    """Commands Redis processed in the next `seconds`, by name (INFO itself left out)."""
    before = command_calls(client)
    await asyncio.sleep(seconds)
    after = command_calls(client)
    grown = {name: calls - before.get(name, 0) for name, calls in after.items()}
    grown["info"] = grown.get("info", 0) - 1  # the second INFO above
    return {name: calls for name, calls in grown.items() if calls > 0}


async def connect(stack, room: str, presence: bool = False):
    query = "?presence=1" if presence else ""
    connection = await websockets.connect(
        ws_url(stack.http_url, f"/ws/talk/{room}/{query}"), origin=stack.http_url, open_timeout=30
    )
    history = json.loads(await asyncio.wait_for(connection.recv(), 30))
    assert history["type"] == "history", history
    return connection


async def idle_cost(stack, client: redis.Redis, side: Side) -> None:
    quiet = await commands_in(client, side.window_s)
    started = time.monotonic()
    rooms = [f"bench-idle-{n}" for n in range(ROOMS)]
    sockets = await asyncio.gather(*(connect(stack, rooms[n % ROOMS]) for n in range(side.sockets)))
    side.join_s = time.monotonic() - started
    await asyncio.sleep(2)  # the joins' own commands done
    held = await commands_in(client, side.window_s)
    per = side.sockets * side.window_s / 60
    side.by_command = {
        name: (held.get(name, 0) - quiet.get(name, 0)) / per
        for name in sorted(set(held) | set(quiet))
        if held.get(name, 0) != quiet.get(name, 0)
    }
    side.commands_per_socket_minute = sum(side.by_command.values())
    for connection in sockets:
        await connection.close()


async def broadcast(stack, receivers: int, messages: int, room: str) -> float:
    """Deliveries per second: `receivers` sockets in `room`, one sender of `messages`."""
    listeners = [await connect(stack, room, presence=True) for _ in range(receivers)]
    sender = await connect(stack, room)
    last = 0.0

    async def receive(connection) -> None:
        nonlocal last
        got = 0
        while got < messages:
            frame = json.loads(await connection.recv())
            if frame["type"] == "message":
                got += 1
        last = max(last, time.monotonic())

    counting = [asyncio.create_task(receive(c)) for c in listeners]
    first = time.monotonic()
    for n in range(messages):
        await sender.send(json.dumps({"type": "message", "nickname": "bench", "text": f"m{n}"}))
    await asyncio.wait_for(asyncio.gather(*counting), 300)
    for connection in [*listeners, sender]:
        await connection.close()
    return receivers * messages / (last - first)


async def measure(settings: dict) -> list[Side]:
    """Both stacks run at once; each measured in turn, the broadcast rounds in
    alternating order, so that whatever else the machine does falls on both alike."""
    sides = {name: Side(name, settings["sockets"], settings["window"]) for name in SIDES}
    with contextlib.ExitStack() as running:
        stacks = {
            name: running.enter_context(start_stack("ours", layer=SHIPPED_LAYER, env=env))
            for name, env in SIDES.items()
        }
        for name, stack in stacks.items():
            password = stack.django_env().get("REDIS_PASSWORD") or None
            client = redis.Redis(host="127.0.0.1", port=stack.redis_port, password=password)
            await idle_cost(stack, client, sides[name])
            client.close()
        for round_ in range(settings["rounds"]):
            for name in list(SIDES)[:: 1 if round_ % 2 == 0 else -1]:
                rate = await broadcast(
                    stacks[name],
                    settings["receivers"],
                    settings["messages"],
                    f"bench-broadcast-{round_}",
                )
                sides[name].deliveries_per_s.append(rate)
    return list(sides.values())


def markdown(sides: list[Side], mode: str, settings: dict) -> str:
    on, off = sides
    lines = [
        f"# What presence costs ({mode})",
        "",
        "The native stack as shipped (two workers), presence on and off"
        " (REALTIME_PRESENCE=0; nothing else differs), both running at once, measured in"
        " turn through nginx.",
        "",
    ]
    figures = [
        [
            f"Redis commands per idle socket per minute ({on.sockets} sockets in {ROOMS} rooms,"
            f" {on.window_s:g} s)",
            f"{on.commands_per_socket_minute:.2f}",
            f"{off.commands_per_socket_minute:.2f}",
        ],
        [f"seconds until {on.sockets} sockets joined", f"{on.join_s:.1f}", f"{off.join_s:.1f}"],
        [
            f"broadcast deliveries/s ({settings['receivers']} receivers, {settings['messages']}"
            f" messages; median of {len(on.deliveries_per_s)})",
            f"{on.deliveries:.0f}",
            f"{off.deliveries:.0f}",
        ],
    ]
    lines += reports.table(["", on.name, off.name], figures, "lrr")
    lines += ["", "Redis commands per idle socket per minute, by command:", ""]
    commands = [
        [command, f"{on.by_command.get(command, 0):.3f}", f"{off.by_command.get(command, 0):.3f}"]
        for command in sorted(set(on.by_command) | set(off.by_command))
    ]
    lines += reports.table(["command", on.name, off.name], commands, "lrr")
    return "\n".join(lines) + "\n"


def main() -> int:
    args = reports.parser(__doc__, MODES, out="bench-results").parse_args()
    started, settings = time.monotonic(), MODES[args.mode]
    sides = asyncio.run(measure(settings))
    report = markdown(sides, args.mode, settings)
    data = [{**asdict(side), "deliveries": side.deliveries} for side in sides]
    reports.publish(args.out, "presence", report, data, started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
