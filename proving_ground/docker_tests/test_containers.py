"""The development stack in containers: every hop, the book's checks, and the faults a
container engine brings (restarts, a killed container, `docker compose stop`).

Scenarios the native suite also runs are imported from it and run here against the
containers (the `stack` fixture of this folder is a DockerStack)."""

import asyncio
import os
import time
import uuid

import httpx
import pytest

from proving_ground import faults
from proving_ground.clients import ChatClient
from proving_ground.faults import storm
from proving_ground.stacks.compose import ROOT
from proving_ground.tests.test_auth import (  # noqa: F401 - collected here, on the containers
    test_a_private_room_admits_its_members_only,
    test_a_signed_in_users_messages_are_theirs_whatever_the_frame_says,
    test_a_ticket_opens_one_socket_as_its_user_and_no_more,
)
from proving_ground.tests.test_chat import (  # noqa: F401 - collected here, on the containers
    test_two_workers_chat_store_in_mysql_and_replay_as_history,
)
from proving_ground.tests.test_faults import assert_survives
from proving_ground.tests.test_http import test_index_is_answered_by_django  # noqa: F401
from proving_ground.tests.test_presence import (  # noqa: F401 - collected here, on the containers
    test_every_worker_tells_the_same_room,
)
from proving_ground.tests.test_websocket import (  # noqa: F401
    test_broadcast_reaches_clients_on_two_worker_processes,
    test_echo_through_nginx,
    test_foreign_origin_is_refused,
)


def test_all_four_containers_are_healthy(stack):
    assert stack.health() == {
        "nginx": "healthy",
        "django": "healthy",
        "mysql": "healthy",
        "redis": "healthy",
    }


def test_static_files_come_from_nginx(stack):
    css = (ROOT / "Django/static/core/site.css").read_bytes()
    response = httpx.get(stack.http_url + "/static/core/site.css")
    assert response.status_code == 200
    assert response.content == css
    assert response.headers["server"].startswith("nginx")
    admin = httpx.get(stack.http_url + "/static/admin/css/base.css")
    assert admin.status_code == 200, "collectstatic did not fill the volume nginx serves"


def test_the_books_shell_check(stack):
    # The book's check prints the layer (the stack's own now: README, "What changed
    # since the book"); on the Redis the Compose file names.
    code = "import channels.layers as c; layer = c.get_channel_layer(); print(layer, layer.hosts)"
    result = stack.exec("django", "python", "manage.py", "shell", "-c", code)
    assert "<realtime.fanout.FanoutChannelLayer object at " in result.stdout
    assert "[{'address': 'redis://redis:6379/0'" in result.stdout


def test_exec_runs_as_the_owner_of_the_checkout(stack):
    # The image's user is uid 1000; files `docker compose exec` writes through the bind
    # mount must belong to whoever owns Django/ on the host (root in CI).
    owner = os.stat(stack.dir / "Django").st_uid
    assert stack.exec("django", "id", "-u").stdout.strip() == str(owner)


def test_unit_tests_run_inside_the_django_container(stack):
    result = stack.compose("run", "--rm", "django", "pytest", "-q", "-p", "no:cacheprovider")
    assert " passed" in result.stdout.splitlines()[-1], result.stdout[-2000:]
    assert "failed" not in result.stdout.splitlines()[-1]


@pytest.mark.parametrize(
    "scenario", [faults.redis_restart, faults.mysql_restart], ids=lambda s: s.__name__
)
async def test_compose_restart_is_survived_with_every_message_stored(stack, scenario):
    # restart_service is `docker compose restart SERVICE`, then waiting for healthy.
    await assert_survives(scenario, stack)


async def test_history_survives_down_and_up(stack):
    room = f"docker-{uuid.uuid4().hex[:10]}"
    client = ChatClient(stack.http_url, room, "ann")
    await client.connect()
    await client.say("kept in the mysql-data volume")
    await client.close()
    stack.compose("down")  # no -v: the volumes stay, as in the README
    stack.compose("up", "-d", "--wait", "--wait-timeout", "300")
    history = await ChatClient(stack.http_url, room, "bob").connect()
    assert [m["text"] for m in history["messages"]] == ["kept in the mysql-data volume"]


async def test_killed_django_container_is_restarted_by_its_policy(stack):
    room = f"docker-{uuid.uuid4().hex[:10]}"
    away = ChatClient(stack.http_url, room, "away")
    await away.connect()
    await away.say("before the kill")
    before = stack.container("django")
    # SIGKILL from the host to the container's init, as a crash or the OOM killer would.
    os.kill(before["State"]["Pid"], 9)
    deadline = time.monotonic() + 60
    while stack.container("django")["RestartCount"] == before["RestartCount"]:
        assert time.monotonic() < deadline, "Docker did not restart the django container"
        await asyncio.sleep(0.5)
    stack.wait_healthy("django")
    client = ChatClient(stack.http_url, room, "back")
    await client.reconnect(within=60)
    assert (await client.say("served after the restart"))["id"]
    # The first client was away for that one: it resumes it, and misses nothing.
    outcome = faults.Outcome("fault", "django killed")
    await faults.finish(stack, outcome, [away, client])
    assert outcome.account.clean and outcome.account.resumed == 1, outcome.account


async def test_compose_stop_is_graceful_and_well_inside_the_grace_period(stack):
    grace = int(stack.config()["services"]["django"]["stop_grace_period"].rstrip("s"))
    client = ChatClient(stack.http_url, f"docker-{uuid.uuid4().hex[:10]}", "stop")
    await client.connect()
    async with httpx.AsyncClient(timeout=60) as http:
        in_flight = asyncio.create_task(http.get(stack.http_url + "/debug/slow?seconds=2"))
        await asyncio.sleep(0.5)
        started = time.monotonic()
        stop = asyncio.create_task(asyncio.to_thread(stack.compose, "stop", "django"))
        response = await in_flight
        closed = await faults.closed_within(client, 10)
        assert closed == faults.CLOSE_SERVICE_RESTART, f"socket closed with {closed}"
        await stop
        stopped = time.monotonic() - started
    assert response.status_code == 200, "the in-flight request did not complete"
    state = stack.container("django")["State"]
    assert state["ExitCode"] == 0, f"exit code {state['ExitCode']}: Docker had to SIGKILL"
    assert stopped < faults.EXIT_BOUND_S < grace, f"stop took {stopped:.1f}s (grace {grace}s)"
    stack.compose("up", "-d", "--wait", "--wait-timeout", "300")


async def test_a_reconnect_storm_resumes_every_socket(stack):
    # 500 sockets in 10 rooms, `docker compose restart django`: all reconnect at once and
    # resume, messages sent meanwhile included; `make storm` prints the figures.
    outcome = await faults.run(storm.reconnect_storm, stack, "fault")
    print(faults.table([outcome]))
    assert outcome.survived, outcome.detail
    assert outcome.clients == storm.ROOMS * storm.PER_ROOM
    assert outcome.account.clean and outcome.account.resumed, outcome.account
