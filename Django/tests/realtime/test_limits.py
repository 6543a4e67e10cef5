"""The caps on open sockets (realtime/limits.py): per signed-in user, per worker."""

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth.models import User
from prometheus_client import REGISTRY

from realtime import limits
from realtime.limits import WorkerSockets, worker_socket_limit

from .test_consumers import refused_with, who

MiB = 1 << 20

pytestmark = pytest.mark.django_db(transaction=True)


def refusals(reason: str) -> float:
    labels = {"route": "who", "reason": reason}
    return REGISTRY.get_sample_value("realtime_handshakes_refused_total", labels) or 0.0


async def hello(comm) -> dict:
    assert (await comm.connect())[0]
    return await comm.receive_json_from()


async def test_a_users_sockets_past_the_cap_are_refused_with_4429_until_one_closes(settings):
    settings.REALTIME_USER_SOCKETS = 2
    ann, bob = [
        await database_sync_to_async(User.objects.create_user)(name) for name in ("ann", "bob")
    ]
    held = [who(scope_user=ann) for _ in range(2)]
    for comm in held:
        assert await hello(comm) == {"type": "hello", "user": "ann"}
    before = refusals("user_sockets")

    error, code = await refused_with(who(scope_user=ann))
    assert code == limits.CLOSE_TOO_MANY_SOCKETS == 4429
    assert "you have 2 sockets open already" in error["detail"]
    assert refusals("user_sockets") == before + 1
    # Another user, and guests, are not held to ann's count.
    assert await hello(other := who(scope_user=bob)) == {"type": "hello", "user": "bob"}
    assert await hello(guest := who()) == {"type": "hello", "user": ""}

    await held.pop().disconnect()
    assert await hello(again := who(scope_user=ann)) == {"type": "hello", "user": "ann"}
    for comm in [*held, other, guest, again]:
        await comm.disconnect()


async def test_a_socket_refused_for_its_room_gives_its_place_back(settings):
    settings.REALTIME_USER_SOCKETS = 1
    ann = await database_sync_to_async(User.objects.create_user)("ann")
    _, code = await refused_with(who(room="private", scope_user=ann))
    assert code == 4403
    assert await hello(comm := who(scope_user=ann)) == {"type": "hello", "user": "ann"}
    await comm.disconnect()


@pytest.fixture
def worker_cap(settings):
    """This process's cap set anew from settings.REALTIME_WORKER_SOCKETS."""
    WorkerSockets._limit_known = False
    yield settings
    WorkerSockets._limit_known = False


async def test_sockets_past_the_workers_cap_get_1013_and_a_frame_saying_why(worker_cap):
    worker_cap.REALTIME_WORKER_SOCKETS = 1
    before = refusals("worker_full")
    assert await hello(first := who()) == {"type": "hello", "user": ""}

    error, code = await refused_with(who())
    assert code == limits.CLOSE_TRY_AGAIN == 1013
    assert error == {"type": "error", "detail": "the server is full; try again later"}
    assert refusals("worker_full") == before + 1

    await first.disconnect()
    assert await hello(second := who()) == {"type": "hello", "user": ""}
    await second.disconnect()
    assert WorkerSockets.open == 0


async def test_no_cap_with_zero(worker_cap):
    worker_cap.REALTIME_WORKER_SOCKETS = 0
    comms = [who() for _ in range(3)]
    for comm in comms:
        assert (await hello(comm))["type"] == "hello"
    for comm in comms:
        await comm.disconnect()


def test_unset_the_cap_is_what_the_memory_limit_leaves(worker_cap, monkeypatch):
    worker_cap.REALTIME_WORKER_SOCKETS = None
    worker_cap.REALTIME_WORKERS = 2
    worker_cap.REALTIME_SOCKET_MEMORY = 64
    monkeypatch.setattr(limits, "memory_limit", lambda: 512 * MiB)
    monkeypatch.setattr(limits, "resident_memory", lambda: 64 * MiB)
    # 80% of 512 MiB less three processes of 64 MiB: 217.6 MiB, over two workers at 64 KiB.
    assert WorkerSockets.limit() == int((0.8 * 512 - 3 * 64) / 2 * 16) == 1740
    assert REGISTRY.get_sample_value("realtime_sockets_limit") == 1740


@pytest.mark.parametrize(
    ("limit_mib", "workers", "expected"),
    [(512, 2, 1740), (1024, 4, 1996), (192, 2, 1), (4096, 1, 50380)],
)
def test_worker_socket_limit(limit_mib, workers, expected):
    assert worker_socket_limit(limit_mib * MiB, workers, 64 * MiB, 64 * 1024) == expected


def test_the_memory_limit_and_rss_are_read_from_this_machine():
    assert 0 < limits.memory_limit() < 1 << 50
    assert 10 * MiB < limits.resident_memory() < limits.memory_limit()
