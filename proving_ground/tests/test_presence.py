"""Who is in a room, through nginx on the real stack: the same answer from every worker
(Redis), users by name and guests counted, and a killed worker's sockets gone within the
presence TTL."""

import asyncio
import os
import signal
import time
import uuid

import pytest

from proving_ground.clients import presence_socket, presence_sockets, presence_until
from proving_ground.clients.site import SiteUser
from proving_ground.stacks.native import NativeStack

# Seconds; the killed worker's sockets must be gone within it, its refresh (a third) and
# the notification's half second.
TTL_S = 3


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def per_worker(stack, room: str, headers: dict | None = None) -> dict:
    """{worker pid: a presence socket it holds} for each of the stack's workers."""
    return await presence_sockets(
        stack.gunicorn_workers(), "worker_pid", stack.http_url, room, headers=headers
    )


def summary(frame: dict) -> tuple:
    return tuple(frame["users"]), frame["user_count"], frame["guests"], frame["sockets"]


async def test_every_worker_tells_the_same_room(stack):
    room = unique("here")
    ann = SiteUser(stack.http_url).sign_up(unique("ann"))
    bob = SiteUser(stack.http_url).sign_up(unique("bob"))
    # ann on every worker, a guest on every worker, then bob.
    sockets = [
        *(await per_worker(stack, room, ann.socket_headers)).values(),
        *(await per_worker(stack, room)).values(),
    ]
    bobs, _ = await presence_socket(stack.http_url, room, headers=bob.socket_headers)
    workers = len(stack.gunicorn_workers())
    everyone = (tuple(sorted([ann.username, bob.username])), 2, workers, 2 * workers + 1)
    heard = await asyncio.gather(
        *(presence_until(s, lambda f: summary(f) == everyone) for s in [*sockets, bobs])
    )
    assert {summary(frame) for frame in heard} == {everyone}
    await bobs.close()
    without_bob = ((ann.username,), 1, workers, 2 * workers)
    for frame in await asyncio.gather(
        *(presence_until(s, lambda f: bob.username in f["left"]) for s in sockets)
    ):
        assert summary(frame) == without_bob
    for connection in sockets:
        await connection.close()


@pytest.fixture(scope="module")
def short_ttl():
    with NativeStack(django_env={"WEB_CONCURRENCY": "2", "REALTIME_PRESENCE_TTL": str(TTL_S)}) as s:
        yield s


async def test_a_killed_workers_sockets_leave_within_the_ttl(short_ttl):
    stack, room = short_ttl, unique("killed")
    held = await per_worker(stack, room)
    (victim, doomed), (_, survivor) = sorted(held.items())
    await presence_until(survivor, lambda f: f["sockets"] == 2)
    os.kill(victim, signal.SIGKILL)  # no goodbye: only the expiry takes it out
    killed = time.monotonic()
    frame = await presence_until(survivor, lambda f: f["sockets"] == 1, timeout=TTL_S * 4)
    took = time.monotonic() - killed
    assert frame["left"] == [""] and frame["guests"] == 1
    assert took <= TTL_S + TTL_S / 3 + 1.5, f"{took:.1f} s"
    await survivor.close()
