"""docker-stack.yml on a single-node swarm: django replicated behind nginx (dnsrr, host-mode
port), secrets as Swarm secrets; a chat message crosses replicas, a killed replica is
replaced while the others' sockets stay open, and a rolling update loses no acknowledged
message; every replica tells the same presence, and a killed one's sockets leave it in
time. Prometheus, with the monitoring override's config unchanged, finds every task."""

import asyncio
import contextlib
import time
import uuid

import httpx
import pytest
import websockets
import yaml

from channels_tutorial.config import Settings
from proving_ground import faults
from proving_ground.clients import (
    ChatClient,
    one_per_server,
    presence_sockets,
    presence_until,
)
from proving_ground.faults import everyone_hears
from proving_ground.stacks.compose import ROOT
from proving_ground.stacks.docker import MONITORING_FILE, docker
from proving_ground.stacks.native import free_port
from proving_ground.stacks.prometheus import Prometheus
from proving_ground.stacks.swarm import HOST, SwarmStack, rolling_update, stored_in_history

ORIGIN = f"https://{HOST}"


@pytest.fixture(scope="module")
def swarm():
    with SwarmStack(replicas=3) as running:
        yield running


def room() -> str:
    return f"swarm-{uuid.uuid4().hex[:10]}"


async def accounted(swarm, clients: list[ChatClient]) -> faults.Outcome:
    """Every client against its room's stored messages (then closed): none missed any."""
    outcome = faults.Outcome("fault", "swarm")
    # Which acknowledged messages the rooms hold (by offset, read through Django).
    rooms = {name: set(swarm.room_offsets(name)) for name in {c.room for c in clients}}
    outcome.stored = sum(m["offset"] in rooms[c.room] for c in clients for m in c.acknowledged)
    await faults.finish(swarm, outcome, clients)
    outcome.survived = outcome.account.clean and outcome.stored == len(outcome.acknowledged)
    print(faults.table([outcome]))
    assert outcome.clients == len(clients)
    assert outcome.stored == len(outcome.acknowledged), "an acknowledged message is not stored"
    assert outcome.account.clean and outcome.account.expected, outcome.account
    return outcome


async def clients_on(swarm, replicas: set[str], name: str) -> list[ChatClient]:
    return await one_per_server(swarm.http_url, name, replicas, origin=ORIGIN)


def test_every_replica_is_healthy_and_secrets_are_files(swarm):
    assert swarm.health("django") == ["healthy"] * 3
    for service in ("nginx", "mysql", "redis"):
        assert swarm.health(service) == ["healthy"]
    # The secrets are Swarm secrets, mounted as files, and they are what Django uses
    # (the env files' values are still in the environment).
    code = (
        "import os, django; os.environ['DJANGO_SETTINGS_MODULE'] = 'channels_tutorial.settings';"
        " django.setup(); from django.conf import settings;"
        " db = settings.DATABASES['default']['PASSWORD'];"
        " print(settings.SECRET_KEY == open('/run/secrets/secret_key').read(),"
        " db == open('/run/secrets/mysql_password').read(),"
        " os.environ['SECRET_KEY'] != settings.SECRET_KEY)"
    )
    (django, *_) = swarm.containers("django")
    result = docker("exec", django["Id"], "python", "-c", code)
    assert result.stdout.split() == ["True", "True", "True"], result.stdout
    page = httpx.get(swarm.http_url + "/", headers={"X-Forwarded-Proto": "https"})
    assert page.status_code == 200 and page.headers["server"] == "nginx"


def test_prometheus_on_the_stacks_network_scrapes_every_django_task(swarm):
    """Prometheus/prometheus.yml as the monitoring override mounts it, in a service on
    the stack's network: the name django resolves to each task (dnsrr), so all three are
    scraped with no edit of the config."""
    monitoring = yaml.safe_load((ROOT / MONITORING_FILE).read_text())
    image = monitoring["services"]["prometheus"]["image"]
    port, name = free_port(), f"{swarm.name}_prometheus"
    docker(
        "service", "create", "--detach", "--name", name,
        "--network", f"{swarm.name}_default", "--endpoint-mode", "dnsrr",
        "--publish", f"published={port},target=9090,mode=host",
        "--mount", f"type=bind,source={swarm.dir / 'Prometheus'},target=/etc/prometheus,readonly",
        image,
    )  # fmt: skip
    try:
        prometheus = Prometheus(f"http://127.0.0.1:{port}")
        deadline, up = time.monotonic() + 120, None
        while up != 3 and time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                up = prometheus.scalar('sum(up{job="django"})')
            time.sleep(1)
        assert up == 3
        tasks = {
            t["labels"]["instance"] for t in prometheus.targets() if t["labels"]["job"] == "django"
        }
        assert len(tasks) == 3
    finally:
        docker("service", "rm", name, check=False)


async def test_a_chat_message_crosses_replicas(swarm):
    clients = await clients_on(swarm, swarm.django_hostnames(), room())
    await everyone_hears(clients[0], clients[1:], "from one replica to the others")
    for client in clients:
        await client.close()


async def presence_on_each(swarm, name: str) -> dict:
    """{replica's host name: a socket in room `name` that asked for presence}."""
    return await presence_sockets(
        swarm.django_hostnames(), "server", swarm.http_url, name, origin=ORIGIN
    )


async def test_a_killed_replica_is_replaced_and_the_others_sockets_stay_open(swarm):
    name = room()
    clients = await clients_on(swarm, swarm.django_hostnames(), name)
    victim, survivors = clients[0], clients[1:]
    # Presence: the same on every replica (three chat sockets, three listeners).
    listeners = await presence_on_each(swarm, name)
    everyone = {"users": [], "user_count": 0, "guests": 6, "sockets": 6}
    for frame in await asyncio.gather(
        *(presence_until(c, lambda f: f["sockets"] == 6) for c in listeners.values())
    ):
        assert {key: frame[key] for key in everyone} == everyone
    swarm.kill_django(victim.server)  # SIGKILL: no goodbye, its sockets only expire
    killed = time.monotonic()
    with pytest.raises(websockets.ConnectionClosed):
        await victim.wait_for(lambda f: False, timeout=10)
    replacing = asyncio.create_task(asyncio.to_thread(swarm.wait_healthy, 180))
    ttl = Settings.model_fields["realtime_presence_ttl"].default
    alive = [c for server, c in listeners.items() if server != victim.server]
    frames = await asyncio.gather(
        *(presence_until(c, lambda f: f["sockets"] == 4, timeout=ttl * 3) for c in alive)
    )
    took = time.monotonic() - killed
    assert all((f["guests"], f["sockets"]) == (4, 4) for f in frames), frames
    # Expired by then, seen at the next refresh of a survivor, told within half a second.
    assert took <= ttl + ttl / 3 + 3, f"{took:.1f} s"
    for connection in listeners.values():
        await connection.close()
    replaced = await replacing
    assert victim.server not in swarm.django_hostnames()
    assert len(swarm.django_hostnames()) == 3, f"not replaced after {replaced:.0f}s"
    assert all(client.is_open for client in survivors)
    for n in range(5):  # while the victim is away: its resume must bring them
        await survivors[n % len(survivors)].say(f"while it was away {n}")
    await victim.reconnect(within=30)
    assert victim.last_history["recovered"] and len(victim.last_history["messages"]) == 5
    await everyone_hears(survivors[0], [victim, *survivors[1:]], "the others never noticed")
    await accounted(swarm, clients)


async def test_a_rolling_update_keeps_every_acknowledged_message(swarm):
    before = swarm.django_hostnames()
    clients = [ChatClient(swarm.http_url, room(), f"user{n}", origin=ORIGIN) for n in range(4)]
    # Swarm watches each new task 5 s, not the stack file's 20 s, before it replaces the
    # next: the test watches the clients itself, and the tasks go the same way, sooner.
    update = await rolling_update(swarm, clients, monitor="5s")
    assert swarm.django_hostnames().isdisjoint(before), "not every task was replaced"
    # Every socket was on a replaced task, so each closed and reconnected at least once.
    assert update["reconnects"] >= len(clients), update
    for client in clients:
        assert client.acknowledged
        assert await stored_in_history(swarm, client, ORIGIN), client.nickname
    await accounted(swarm, clients)
