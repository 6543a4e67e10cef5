"""nginx's limits per client address, as shipped (nginx/.env.nginx): one address past its
WebSocket cap or its sign-in rate gets 429 with Retry-After and a page a person can read,
while another address connects and chats as before."""

import asyncio
import json
import time
import uuid

import httpx
import pytest
import websockets

from proving_ground.clients import ws_url
from proving_ground.stacks.compose import ROOT
from proving_ground.stacks.native import NativeStack

# Another address of this machine's loopback network: another client, as nginx sees it.
SECOND_ADDRESS = "127.0.0.2"


def shipped_limits() -> dict[str, str]:
    """nginx/.env.nginx's settings, the one place they are defined."""
    lines = (ROOT / "nginx/.env.nginx").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


@pytest.fixture(scope="module")
def limits_stack():
    with NativeStack(address_limits=True) as stack:
        yield stack


def connect(stack, path: str, source: str | None = None):
    return websockets.connect(
        ws_url(stack.http_url, path),
        origin=stack.http_url,
        open_timeout=10,
        local_addr=(source, 0) if source else None,
    )


async def assert_one_address_capped(connect_one, connect_other) -> float:
    """The cap's worth of sockets opened with `connect_one(path)`; the next one refused
    with 429, Retry-After and a page; then a socket of `connect_other(path)` chats. The
    seconds the other's handshake took."""
    limits = shipped_limits()
    path = f"/ws/talk/crowd-{uuid.uuid4().hex[:8]}/"
    held = []
    try:
        for _ in range(int(limits["NGINX_SOCKETS_PER_ADDRESS"])):
            held.append(await connect_one(path))
        with pytest.raises(websockets.InvalidStatus) as refused:
            await connect_one(path)
        response = refused.value.response
        assert response.status_code == 429
        assert response.headers["Retry-After"] == limits["NGINX_RETRY_AFTER"]
        assert b"Too many requests" in response.body

        started = time.monotonic()
        async with connect_other(path) as other:
            handshake_s = time.monotonic() - started
            assert json.loads(await other.recv())["type"] == "history"
            await other.send(json.dumps({"type": "message", "nickname": "b", "text": "hi"}))
            frame = json.loads(await asyncio.wait_for(other.recv(), 10))
            while frame["type"] != "message":
                frame = json.loads(await asyncio.wait_for(other.recv(), 10))
        assert frame["text"] == "hi"
    finally:
        await asyncio.gather(*(socket.close() for socket in held))
    # The cap counts open sockets: once they close, the address is served again.
    async with connect_one(path):
        pass
    return handshake_s


async def test_sockets_past_one_addresss_cap_get_429_while_another_address_chats(limits_stack):
    handshake_s = await assert_one_address_capped(
        lambda path: connect(limits_stack, path),
        lambda path: connect(limits_stack, path, source=SECOND_ADDRESS),
    )
    assert handshake_s < 1, f"the other address waited {handshake_s:.2f} s"


def test_sign_in_posts_past_the_burst_get_429_with_retry_after_and_a_page(limits_stack):
    limits = shipped_limits()
    burst = int(limits["NGINX_SIGN_IN_BURST"])
    per_second = int(limits["NGINX_SIGN_IN_RATE"].removesuffix("r/m")) / 60
    url = f"{limits_stack.http_url}/accounts/login/"
    started = time.monotonic()
    with httpx.Client(timeout=10) as client:
        statuses = [
            client.post(url, data={"username": "x", "password": "y"}) for _ in range(burst + 10)
        ]
        elapsed = time.monotonic() - started
        # Django answered the ones let through (a form without a CSRF token: 403).
        through = [r for r in statuses if r.status_code != 429]
        assert {r.status_code for r in through} == {403}
        # The burst and the first request, plus what the rate refilled meanwhile.
        assert burst + 1 <= len(through) <= burst + 2 + elapsed * per_second
        refused = next(r for r in statuses if r.status_code == 429)
        assert refused.headers["Retry-After"] == limits["NGINX_RETRY_AFTER"]
        assert "Too many requests" in refused.text
        # Reading the page is not limited; another address still signs in.
        assert client.get(url).status_code == 200
    transport = httpx.HTTPTransport(local_address=SECOND_ADDRESS)
    with httpx.Client(transport=transport, timeout=10) as other:
        assert other.post(url, data={"username": "x", "password": "y"}).status_code == 403
