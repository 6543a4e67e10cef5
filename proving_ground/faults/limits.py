"""Hostile clients against the stack's limits (docs/production.md, "Limits"): one address
holding sockets (nginx's cap per address), one user holding sockets (REALTIME_USER_SOCKETS),
a flood of sockets past the workers' caps (REALTIME_WORKER_SOCKETS) and password guessing
(the sign-in throttle). Each is refused as documented while everyone else is served and
loses nothing. `make faults` prints their rows; tests/test_limits.py runs them natively,
docker_tests/test_limits.py in containers with the production settings.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import sys
import time
import uuid
from collections import Counter

import psutil
import websockets

from proving_ground.clients import ChatClient, ws_url
from proving_ground.clients.site import PASSWORD, SiteUser
from proving_ground.stacks.compose import ROOT
from proving_ground.stacks.native import LOCALHOST
from proving_ground.stacks.prometheus import Scrape, scrape

from . import NotApplicable, Outcome, chat_client, finish, layer_of, room

sys.path.insert(0, str(ROOT / "Django"))
from channels_tutorial.config import Settings  # noqa: E402
from realtime.limits import CLOSE_TOO_MANY_SOCKETS, CLOSE_TRY_AGAIN  # noqa: E402

# The native stack these run on: nginx's limits as shipped, a cap per worker small enough
# for a flood to pass quickly, and a lockout short enough to see end.
STACK_ENV = {"REALTIME_WORKER_SOCKETS": "150", "SIGN_IN_LOCKOUT": "5"}
# A flood's sockets go in waves of this many at once, from addresses holding at most
# PER_ADDRESS each (under nginx's cap), until REFUSED_WANTED got 1013, or FLOOD_BOUND
# were tried: under production's nginx, 8192 connections, two a socket.
WAVE = 100
PER_ADDRESS = 200
REFUSED_WANTED = 50
FLOOD_BOUND = 3900
WRONG_PASSWORDS = 50
# The heading of the throttle's page (accounts/templates/accounts/locked_out.html).
LOCKED_OUT = "Too many failed sign-ins"


def shipped_limits() -> dict[str, str]:
    """nginx/.env.nginx's settings, the one place they are defined."""
    lines = (ROOT / "nginx/.env.nginx").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


def setting(stack, name: str) -> int:
    """The stack's Django setting `name` (config.py's field): its env, or the default."""
    value = stack.django_env().get(name.upper())
    return int(value) if value else Settings.model_fields[name].default


class Front:
    """How clients at different addresses reach a stack. Natively each is one of this
    machine's loopback addresses (127.0.0.N). In containers with the production settings
    (the stack's `site_host` set: the name ALLOWED_HOSTS has) the test is production's TLS
    proxy in front of nginx, reporting each client's address in X-Forwarded-For, as nginx
    trusts it to (NGINX_REAL_IP_FROM)."""

    def __init__(self, stack) -> None:
        self.stack, self.host = stack, getattr(stack, "site_host", None)

    @property
    def base(self) -> str:
        return f"http://{self.host}:{self.stack.http_port}" if self.host else self.stack.http_url

    @property
    def origin(self) -> str:
        return f"https://{self.host}" if self.host else self.stack.http_url

    def address(self, n: int) -> str:
        return f"203.0.113.{n + 1}" if self.host else f"127.0.0.{n + 1}"

    def socket_options(self, n: int, headers: dict | None = None) -> dict:
        """websockets.connect's options for a client at address `n`."""
        if not self.host:
            return {"local_addr": (self.address(n), 0), "additional_headers": headers}
        proxied = {"X-Forwarded-Proto": "https", "X-Forwarded-For": self.address(n)}
        return {
            "host": LOCALHOST,
            "port": self.stack.http_port,
            "proxy": None,
            "additional_headers": {**proxied, **(headers or {})},
        }

    def connect(self, path: str, n: int, headers: dict | None = None):
        return websockets.connect(
            ws_url(self.base, path),
            origin=self.origin,
            open_timeout=20,
            **self.socket_options(n, headers),
        )

    def chat_client(self, room_name: str, nickname: str, n: int) -> ChatClient:
        return chat_client(
            self.base, room_name, nickname, origin=self.origin, options=self.socket_options(n)
        )

    def site_user(self, n: int) -> SiteUser:
        if not self.host:
            return SiteUser(self.base, source=self.address(n))
        headers = {"X-Forwarded-For": self.address(n)}
        return SiteUser(f"http://{LOCALHOST}:{self.stack.http_port}", self.host, headers=headers)

    def metric(self, name: str, **labels: str) -> float:
        """A metric summed over Django's workers (its own port: natively published, in
        containers read from inside)."""
        if not self.host:
            return scrape(self.stack.django_url).value(name, **labels)
        url = f"http://127.0.0.1:{self.stack.django_env()['DJANGO_PORT']}/metrics"
        code = f"import urllib.request; print(urllib.request.urlopen({url!r}).read().decode())"
        return Scrape(self.stack.exec("django", "python", "-c", code).stdout).value(name, **labels)

    def workers(self) -> list[psutil.Process]:
        if self.host:
            return self.stack.worker_processes()
        return [psutil.Process(pid) for pid in self.stack.gunicorn_workers()]


REFUSED = "realtime_handshakes_refused_total"


def user_name() -> str:
    return f"u{uuid.uuid4().hex[:10]}"


# -- one address -------------------------------------------------------------------------


async def one_address_capped(connect_one, connect_other) -> float:
    """nginx's cap's worth of sockets opened with `connect_one(path)`; the next one
    refused with 429, Retry-After and a page; then a socket of `connect_other(path)`
    chats. The seconds the other's handshake took."""
    limits = shipped_limits()
    path = f"/ws/talk/crowd-{uuid.uuid4().hex[:8]}/"
    held = []
    try:
        for _ in range(int(limits["NGINX_SOCKETS_PER_ADDRESS"])):
            held.append(await connect_one(path))
        try:
            held.append(await connect_one(path))
        except websockets.InvalidStatus as refused:
            response = refused.response
        else:
            raise AssertionError("a socket past the address's cap was let in")
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


async def sockets_from_one_address(stack, outcome: Outcome) -> None:
    front = Front(stack)
    handshake_s = await one_address_capped(
        lambda path: front.connect(path, 0), lambda path: front.connect(path, 1)
    )
    assert handshake_s < 1, f"the other address waited {handshake_s:.2f} s"
    cap = shipped_limits()["NGINX_SOCKETS_PER_ADDRESS"]
    outcome.detail = (
        f"{cap} sockets from one address, the next 429 with Retry-After (nginx);"
        f" another address chatted, its handshake {handshake_s * 1000:.0f} ms"
    )


# -- one user ----------------------------------------------------------------------------


async def refusal(socket, frame: dict | None = None) -> tuple[dict, int]:
    """The error frame (`frame`, if it was read already) and the close code of a handshake
    accepted only to be turned down."""
    if frame is None:
        frame = json.loads(await asyncio.wait_for(socket.recv(), 10))
    with contextlib.suppress(websockets.ConnectionClosed, TimeoutError):
        await asyncio.wait_for(socket.recv(), 10)
    return frame, socket.close_code


async def sockets_of_one_user(stack, outcome: Outcome) -> None:
    if layer_of(stack) == "pubsub":
        raise NotApplicable("the pub/sub layer keeps nothing in Redis to count a user's sockets")
    front = Front(stack)
    cap = setting(front.stack, "realtime_user_sockets")
    ann = await asyncio.to_thread(front.site_user(2).sign_up, user_name())
    bob = await asyncio.to_thread(front.site_user(2).sign_up, user_name())
    path = f"/ws/talk/{room()}/"
    refused_before = front.metric(REFUSED, reason="user_sockets")
    held = []
    try:
        for _ in range(cap):
            held.append(socket := await front.connect(path, 2, ann.socket_headers))
            assert json.loads(await socket.recv())["type"] == "history"
        async with front.connect(path, 2, ann.socket_headers) as refused:
            frame, code = await refusal(refused)
        assert code == CLOSE_TOO_MANY_SOCKETS, (code, frame)
        assert f"you have {cap} sockets open already" in frame["detail"], frame
        # Another user, at the same address, is not held to ann's count.
        async with front.connect(path, 2, bob.socket_headers) as other:
            assert json.loads(await other.recv())["type"] == "history"
        await held.pop().close()
        async with front.connect(path, 2, ann.socket_headers) as again:
            assert json.loads(await again.recv())["type"] == "history"
    finally:
        await asyncio.gather(*(socket.close() for socket in held))
    assert front.metric(REFUSED, reason="user_sockets") == refused_before + 1
    outcome.detail = (
        f"{cap} sockets of one user, the next closed with {code} and why (counted); another"
        " user connected; one closed, one more let in"
    )


# -- a flood past the workers' caps ------------------------------------------------------


async def flood_socket(front: Front, path: str, n: int):
    """(what happened, the open socket if it was let in)."""
    try:
        socket = await front.connect(path, n)
    except websockets.InvalidStatus as refused:
        return f"HTTP {refused.response.status_code}", None
    except (OSError, TimeoutError, websockets.WebSocketException) as failed:
        return type(failed).__name__, None
    try:
        frame = json.loads(await asyncio.wait_for(socket.recv(), 20))
    except (websockets.ConnectionClosed, TimeoutError) as failed:
        return f"closed {socket.close_code or type(failed).__name__}", None
    if frame.get("type") == "history":
        return "accepted", socket
    _, code = await refusal(socket, frame)
    return f"close {code}", None


def rss(workers: list[psutil.Process]) -> int:
    return sum(worker.memory_info().rss for worker in workers)


async def socket_flood(stack, outcome: Outcome, memory_check=None) -> None:
    """Sockets from many addresses until the workers' caps turn REFUSED_WANTED away with
    1013, while bystanders chat in another room: every flood socket is let in or told to
    try later, no worker dies, every bystander has every message. `memory_check()`, at
    the flood's height: the containers' own checks."""
    front = Front(stack)
    workers = front.workers()
    pids = sorted(worker.pid for worker in workers)
    before = rss(workers)
    talk = room()
    bystanders = [front.chat_client(talk, f"calm{n}", 3) for n in range(4)]
    for client in bystanders:
        await client.connect()
    path = f"/ws/talk/{room()}/"
    refused_before = front.metric(REFUSED, reason="worker_full")
    held, results, said = [], Counter(), 0
    try:
        while results[f"close {CLOSE_TRY_AGAIN}"] < REFUSED_WANTED:
            tried = sum(results.values())
            assert tried < FLOOD_BOUND, f"{tried} sockets, too few 1013s: {dict(results)}"
            wave = range(tried, tried + WAVE)
            outcomes = await asyncio.gather(
                *(flood_socket(front, path, 10 + i // PER_ADDRESS) for i in wave)
            )
            for what, socket in outcomes:
                results[what] += 1
                if socket is not None:
                    held.append(socket)
            # The bystanders are heard throughout.
            await bystanders[said % 4].say(f"during the flood {said}", timeout=15)
            said += 1
        grown = rss(workers) - before
        if memory_check is not None:
            await memory_check()
        assert set(results) == {"accepted", f"close {CLOSE_TRY_AGAIN}"}, dict(results)
        assert all(socket.close_code is None for socket in held), "a flood socket was dropped"
        assert sorted(worker.pid for worker in front.workers()) == pids, "a worker restarted"
        refused = front.metric(REFUSED, reason="worker_full") - refused_before
        assert refused == results[f"close {CLOSE_TRY_AGAIN}"], (refused, dict(results))
        assert front.metric("realtime_sockets_limit") > 0
    finally:
        await asyncio.gather(*(socket.close() for socket in held), return_exceptions=True)
    # The flood gone (its closes take a moment), the workers let new sockets in again.
    async with asyncio.timeout(10):
        while (await flood_socket(front, path, 4))[0] != "accepted":
            await asyncio.sleep(0.2)
    await finish(front.stack, outcome, bystanders)
    outcome.detail = (
        f"{sum(results.values())} sockets: {results['accepted']} let in,"
        f" {results[f'close {CLOSE_TRY_AGAIN}']} closed with 1013 (counted); no worker"
        " restarted;"
        f" workers grew {grown / 2**20:.0f} MiB, {grown / 1024 / len(held):.0f} KiB a socket;"
        f" {len(bystanders)} bystanders said {said} messages, all heard"
    )


# -- password guessing -------------------------------------------------------------------


def sign_in(user: SiteUser, username: str, password: str) -> tuple[int, str]:
    """(status, the page's heading) of a sign-in; 302 followed to the chat: 200 there."""
    status, body = user.post_form("/accounts/login/", {"username": username, "password": password})
    heading = re.search(r"<h1>(.*?)</h1>", body, re.S)
    return status, heading.group(1).strip() if heading else body[:80]


async def password_guessing(stack, outcome: Outcome) -> None:
    """WRONG_PASSWORDS wrong passwords for one account: refused from the configured count
    on; the right password is refused during the lockout, from another address too, and
    accepted after it."""
    front = Front(stack)
    limit = setting(front.stack, "sign_in_failure_limit")
    lockout = setting(front.stack, "sign_in_lockout")
    name = user_name()
    await asyncio.to_thread(front.site_user(4).sign_up, name)
    locked_before = front.metric("accounts_sign_ins_locked_out_total")
    guesser = front.site_user(5)
    answers = [
        await asyncio.to_thread(sign_in, guesser, name, f"guess {n}")
        for n in range(WRONG_PASSWORDS)
    ]
    locked_at = time.monotonic()
    # The form again, with its error, until the limit; from the limit on 429: the
    # throttle's page, or nginx's once the address is past its own rate.
    assert answers[: limit - 1] == [(200, "Sign in")] * (limit - 1), answers[:limit]
    assert answers[limit - 1] == (429, LOCKED_OUT), answers[limit - 1]
    assert {status for status, _ in answers[limit:]} == {429}, answers
    throttled = answers.count((429, LOCKED_OUT))

    owner = front.site_user(6)
    answer = await asyncio.to_thread(sign_in, owner, name, PASSWORD)
    assert answer == (429, LOCKED_OUT), answer
    assert owner.cookie("sessionid") is None
    # One for each of the throttle's refusals: the guesses' and the owner's.
    moved = front.metric("accounts_sign_ins_locked_out_total") - locked_before
    assert moved == throttled + 1, (moved, throttled)

    await asyncio.sleep(max(lockout - (time.monotonic() - locked_at), 0) + 1)
    status, _ = await asyncio.to_thread(sign_in, owner, name, PASSWORD)
    assert status == 200 and owner.cookie("sessionid") is not None, status
    outcome.detail = (
        f"{WRONG_PASSWORDS} wrong passwords: {limit - 1} answered, the rest 429 ({throttled}"
        f" by the throttle, the others by nginx's rate); the right one refused during the"
        f" {lockout} s lockout from another address, accepted after; each refusal counted"
    )


HOSTILE = [sockets_from_one_address, sockets_of_one_user, socket_flood, password_guessing]
