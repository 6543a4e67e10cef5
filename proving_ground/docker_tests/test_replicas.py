"""`docker compose up -d --scale django=3` in development, from nothing: the replicas
migrate one at a time, each gets its own debugging port, and nginx, never restarted,
spreads HTTP requests and WebSockets over the replicas it finds in Docker's DNS,
including ones removed or added after it started."""

import uuid

import httpx
import pytest

from proving_ground.client import ChatClient, one_per_server
from proving_ground.docker import DockerStack
from proving_ground.faults import everyone_hears


@pytest.fixture(scope="module")
def replicated():
    """A fresh development stack (empty volumes), started with three django replicas."""
    stack = DockerStack()
    try:
        yield stack.up("--scale", "django=3")
    finally:
        stack.down()


def scale(stack, replicas: int) -> None:
    stack.compose("up", "-d", "--wait", "--wait-timeout", "300", "--scale", f"django={replicas}")


def replica_hostnames(stack) -> set[str]:
    ids = stack.compose("ps", "-q", "django").stdout.split()
    return {stack.inspect(container)["Config"]["Hostname"] for container in ids}


def servers_over_http(stack, requests: int = 30) -> set[str]:
    """The replicas that answered `requests` requests through nginx (all must answer)."""
    return {
        httpx.get(stack.http_url + "/api/status", timeout=30).json()["server"]
        for _ in range(requests)
    }


def test_replicas_started_together_migrated_one_at_a_time(replicated):
    logs = replicated.compose("logs", "--no-log-prefix", "django").stdout
    # One replica created the tables; the others waited for its lock, then found none to do.
    assert logs.count("Applying talk.0001_initial... OK") == 1, logs[-3000:]
    assert logs.count("No migrations to apply.") == 2, logs[-3000:]


async def test_three_replicas_behind_one_nginx_share_the_group(replicated):
    replicas = replica_hostnames(replicated)
    assert len(replicas) == 3
    # No host-port clash: each replica answers on a debugging port of its own.
    ports = replicated.django_ports()
    assert len(set(ports)) == 3
    direct = {
        httpx.get(f"http://127.0.0.1:{port}/api/status", timeout=10).json()["server"]
        for port in ports
    }
    assert direct == replicas
    assert servers_over_http(replicated) == replicas
    room = f"replicas-{uuid.uuid4().hex[:10]}"
    clients = await one_per_server(replicated.http_url, room, replicas)
    # One group message, sent on one replica, reaches the sockets on all three.
    await everyone_hears(clients[0], clients[1:], "to every replica")
    for client in clients:
        await client.close()


async def test_nginx_follows_replicas_removed_and_added_without_a_restart(replicated):
    nginx_started = replicated.container("nginx")["State"]["StartedAt"]
    scale(replicated, 1)
    # Every request and socket is still answered, by the one left: nginx gives up on a
    # removed address after 2 s and tries the next, until its 2 s cache expires.
    (remaining,) = replica_hostnames(replicated)
    assert servers_over_http(replicated) == {remaining}
    client = ChatClient(replicated.http_url, f"replicas-{uuid.uuid4().hex[:10]}", "after")
    await client.connect()
    assert client.server == remaining
    await client.close()
    # Two new replicas: nginx sends them traffic too.
    scale(replicated, 3)
    replicas = replica_hostnames(replicated)
    assert len(replicas) == 3 and remaining in replicas
    assert servers_over_http(replicated, requests=60) == replicas
    assert replicated.container("nginx")["State"]["StartedAt"] == nginx_started
