"""WebSockets through nginx, and delivery between worker processes through Redis."""

import asyncio
import json
import os
import resource
import uuid

import psutil
import pytest
import websockets

from proving_ground.clients import one_per_worker

from .conftest import open_socket, receive_until, ws_url


async def test_echo_through_nginx(stack):
    socket, hello = await open_socket(stack)
    async with socket:
        assert hello["type"] == "hello" and hello["pid"] > 0
        await socket.send(json.dumps({"type": "echo", "text": "こんにちは 👋"}))
        echo = await receive_until(socket, lambda f: f["type"] == "echo")
        assert echo == {"type": "echo", "text": "こんにちは 👋", "pid": hello["pid"]}


async def test_frames_are_not_compressed_though_the_client_offers_it(stack):
    # websockets offers permessage-deflate, as browsers do; the stack declines it
    # (WS_PER_MESSAGE_DEFLATE, see channels_tutorial/config.py).
    socket, _ = await open_socket(stack)
    async with socket:
        assert "permessage-deflate" in socket.request.headers["Sec-WebSocket-Extensions"]
        assert "Sec-WebSocket-Extensions" not in socket.response.headers


@pytest.mark.parametrize("port", ["nginx", "django"])
async def test_a_path_no_route_matches_is_answered_404_without_a_traceback(stack, port):
    base = stack.http_url if port == "nginx" else stack.django_url
    path = f"/ws/no-such-{uuid.uuid4().hex[:8]}/"
    with pytest.raises(websockets.InvalidStatus) as refused:
        await websockets.connect(ws_url(base, path), origin=stack.http_url)
    assert refused.value.response.status_code == 404
    await asyncio.sleep(0.5)  # the log line of a failure would come with the answer
    log = stack.log_tail("django", 2000)
    assert "No route found" not in log and "Traceback" not in log.split(path)[-1]


async def test_foreign_origin_is_refused(stack):
    with pytest.raises(websockets.InvalidStatus) as refused:
        await websockets.connect(ws_url(stack.http_url, "/ws/echo/"), origin="http://evil.example")
    assert refused.value.response.status_code == 403


async def test_broadcast_reaches_clients_on_two_worker_processes(stack):
    by_pid, spare = await one_per_worker(stack.gunicorn_workers(), connect_echo(stack))
    try:
        (sender_pid, sender), *_ = by_pid.items()
        token = uuid.uuid4().hex
        await sender.send(json.dumps({"type": "broadcast", "text": token}))
        for pid, socket in by_pid.items():
            frame = await receive_until(socket, lambda f: f.get("text") == token)
            assert frame["type"] == "broadcast"
            assert frame["pid"] == pid, "delivered by the worker that holds the socket"
            assert frame["from_pid"] == sender_pid
    finally:
        for socket in [*by_pid.values(), *spare]:
            await socket.close()


def connect_echo(stack):
    async def connect():
        socket, hello = await open_socket(stack)
        return socket, hello["pid"]

    return connect


def listening_sockets(pid: int, port: int) -> set[str]:
    """The listening sockets on `port` that process `pid` holds, as "socket:[inode]"."""
    return {
        os.readlink(f"/proc/{pid}/fd/{connection.fd}")
        for connection in psutil.Process(pid).net_connections(kind="tcp")
        if connection.status == psutil.CONN_LISTEN and connection.laddr.port == port
    }


def test_each_worker_listens_on_a_socket_of_its_own(stack):
    # reuse_port (gunicorn.conf.py): the kernel hashes connections over the workers'
    # sockets; one shared socket went to whichever worker woke first (`make spread`).
    master = stack.executors["django"].process.pid
    assert listening_sockets(master, stack.django_port) == set()
    workers = stack.gunicorn_workers()
    owned = [listening_sockets(pid, stack.django_port) for pid in workers]
    assert all(len(inodes) == 1 for inodes in owned), owned
    assert len(set().union(*owned)) == len(workers), f"workers share a socket: {owned}"


async def test_nginx_holds_more_websockets_than_the_images_default_allows(stack):
    # Each proxied socket is two nginx connections; the image's nginx.conf allowed 1024
    # per worker. 600 sockets per nginx worker pass that even if spread perfectly evenly.
    nginx_workers = len(psutil.Process(stack.executors["nginx"].process.pid).children())
    count = 600 * nginx_workers
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, count + 1000)), hard))
    sockets = []
    try:
        for _ in range(0, count, 100):
            opened = await asyncio.gather(*(open_socket(stack) for _ in range(100)))
            sockets += [socket for socket, hello in opened if hello["type"] == "hello"]
        assert len(sockets) == count
        token = uuid.uuid4().hex
        await sockets[0].send(json.dumps({"type": "broadcast", "text": token}))
        heard = await asyncio.gather(
            *(receive_until(s, lambda f: f.get("text") == token, timeout=30) for s in sockets[-50:])
        )
        assert len(heard) == 50
    finally:
        await asyncio.gather(*(socket.close() for socket in sockets))
