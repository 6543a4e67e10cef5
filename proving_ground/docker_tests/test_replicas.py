"""`docker compose up -d --scale django=3` in development: each replica gets its own
debugging port, and nginx, never restarted, spreads HTTP requests and WebSockets over the
replicas it finds in Docker's DNS, including ones added or removed after it started."""

import uuid

import httpx

from proving_ground.client import ChatClient


def scale(stack, replicas: int) -> None:
    stack.compose("up", "-d", "--wait", "--wait-timeout", "300", "--scale", f"django={replicas}")


def replica_hostnames(stack) -> set[str]:
    ids = stack.compose("ps", "-q", "django").stdout.split()
    return {stack.inspect(container)["Config"]["Hostname"] for container in ids}


def servers_over_http(stack, requests: int = 30) -> set[str]:
    return {
        httpx.get(stack.http_url + "/api/status", timeout=30).json()["server"]
        for _ in range(requests)
    }


async def sockets_on_every_replica(
    stack, room: str, replicas: set[str], origin: str | None = None
) -> list[ChatClient]:
    """Chat sockets through nginx until each replica holds one; the spares are closed."""
    chosen: dict[str, ChatClient] = {}
    for attempt in range(60):
        client = ChatClient(stack.http_url, room, f"user{attempt}", origin=origin)
        await client.connect()
        if client.server in chosen:
            await client.close()
        else:
            chosen[client.server] = client
        if set(chosen) == replicas:
            return list(chosen.values())
    raise AssertionError(f"60 sockets reached {sorted(chosen)}, not all of {sorted(replicas)}")


async def test_three_replicas_behind_one_nginx_share_the_group(stack):
    nginx_started = stack.container("nginx")["State"]["StartedAt"]
    scale(stack, 3)
    try:
        replicas = replica_hostnames(stack)
        assert len(replicas) == 3
        # No host-port clash: each replica answers on a debugging port of its own.
        ports = stack.django_ports()
        assert len(set(ports)) == 3
        direct = {
            httpx.get(f"http://127.0.0.1:{port}/api/status", timeout=10).json()["server"]
            for port in ports
        }
        assert direct == replicas

        # nginx found the two new replicas without a restart, for HTTP and WebSockets.
        assert servers_over_http(stack) == replicas
        room = f"replicas-{uuid.uuid4().hex[:10]}"
        clients = await sockets_on_every_replica(stack, room, replicas)
        # One group message, sent on one replica, reaches the sockets on all three.
        sent = await clients[0].say("to every replica")
        for client in clients[1:]:
            await client.wait_for(lambda f: f.get("type") == "message" and f["id"] == sent["id"])
        for client in clients:
            await client.close()
    finally:
        scale(stack, 1)
    # Removed replicas: every request and socket is still answered, by the one left
    # (nginx gives up on a removed address after 2 s and tries the next, until its 2 s
    # cache expires).
    (remaining,) = replica_hostnames(stack)
    assert servers_over_http(stack) == {remaining}
    client = ChatClient(stack.http_url, f"replicas-{uuid.uuid4().hex[:10]}", "after")
    await client.connect()
    assert client.server == remaining
    await client.close()
    assert stack.container("nginx")["State"]["StartedAt"] == nginx_started
