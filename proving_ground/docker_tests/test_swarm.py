"""docker-stack.yml on a single-node swarm: django replicated behind nginx (dnsrr, host-mode
port), secrets as Swarm secrets; a chat message crosses replicas, a killed replica is
replaced while the others' sockets stay open, and a rolling update loses no acknowledged
message."""

import asyncio
import os
import threading
import time
import uuid

import httpx
import pytest
import websockets

from proving_ground.client import ChatClient
from proving_ground.swarm import HOST, SwarmStack, docker

from .test_replicas import sockets_on_every_replica

ORIGIN = f"https://{HOST}"


@pytest.fixture(scope="module")
def swarm():
    with SwarmStack(replicas=3) as running:
        yield running


def room() -> str:
    return f"swarm-{uuid.uuid4().hex[:10]}"


async def clients_on(swarm, replicas: set[str], name: str) -> list[ChatClient]:
    clients = await sockets_on_every_replica(swarm, name, replicas, origin=ORIGIN)
    return clients


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


async def test_a_chat_message_crosses_replicas(swarm):
    clients = await clients_on(swarm, swarm.django_hostnames(), room())
    sent = await clients[0].say("from one replica to the others")
    for client in clients[1:]:
        await client.wait_for(lambda f: f.get("type") == "message" and f["id"] == sent["id"])
    for client in clients:
        await client.close()


async def test_a_killed_replica_is_replaced_and_the_others_sockets_stay_open(swarm):
    name = room()
    clients = await clients_on(swarm, swarm.django_hostnames(), name)
    victim, survivors = clients[0], clients[1:]
    (container,) = [
        c for c in swarm.containers("django") if c["Config"]["Hostname"] == victim.server
    ]
    os.kill(container["State"]["Pid"], 9)  # as a crash or the OOM killer would
    with pytest.raises(websockets.ConnectionClosed):
        await victim.wait_for(lambda f: False, timeout=10)
    replaced = await asyncio.to_thread(swarm.wait_healthy, 180)
    assert victim.server not in swarm.django_hostnames()
    assert len(swarm.django_hostnames()) == 3, f"not replaced after {replaced:.0f}s"
    assert all(client.is_open for client in survivors)
    await victim.reconnect(within=30)
    sent = await survivors[0].say("the others never noticed")
    for client in [victim, *survivors[1:]]:
        await client.wait_for(lambda f: f.get("type") == "message" and f["id"] == sent["id"])
    for client in clients:
        await client.close()


async def chatter(client: ChatClient, stop: threading.Event, log: dict) -> None:
    """Send a message a second; on a closed socket reconnect (as the page does) and check
    that the history it gets holds every message acknowledged so far."""
    await client.connect()
    n = 0
    while not stop.is_set() and n < 45:  # the history shows the last 50 of a room
        try:
            await client.say(f"{client.nickname} {n}", timeout=10)
            n += 1
            await asyncio.sleep(1)
        except (websockets.ConnectionClosed, TimeoutError):
            log["reconnects"] += 1
            await client.reconnect(within=60)
            history = {m["id"] for m in client.last_history["messages"]}
            missing = {m["id"] for m in client.acknowledged} - history
            assert not missing, f"acknowledged but not in the history: {missing}"


async def test_a_rolling_update_keeps_every_acknowledged_message(swarm):
    before = swarm.django_hostnames()
    clients = [ChatClient(swarm.http_url, room(), f"user{n}", origin=ORIGIN) for n in range(4)]
    stop, log = threading.Event(), {"reconnects": 0}
    started = time.monotonic()
    update = asyncio.create_task(
        asyncio.to_thread(swarm.service, "update", "--force", "--detach=false", "--quiet")
    )
    talk = asyncio.gather(*(chatter(client, stop, log) for client in clients))
    await update
    took = time.monotonic() - started
    await asyncio.sleep(3)  # a few messages on the new tasks
    stop.set()
    await talk
    assert swarm.django_hostnames().isdisjoint(before), "not every task was replaced"
    # Every socket was on a replaced task, so each closed and reconnected at least once.
    assert log["reconnects"] >= len(clients), log
    for client in clients:
        await client.close()
        fresh = ChatClient(swarm.http_url, client.room, "reader", origin=ORIGIN)
        history = {m["id"] for m in (await fresh.connect())["messages"]}
        await fresh.close()
        assert client.acknowledged and {m["id"] for m in client.acknowledged} <= history
    print(f"rolling update: {took:.0f} s, {log['reconnects']} reconnects, 0 lost")
