"""/metrics on the real stack: Django's port gives every worker's figures in one scrape;
nginx's public server never passes it on; each metric moves when what it counts happens."""

import asyncio
import json
import os
import signal
import uuid

import httpx
import psutil
import pytest
import websockets

from proving_ground.clients import ChatClient, describe_refusal, one_per_worker, ws_url
from proving_ground.stacks.prometheus import Scrape, scrape

TALK = {"route": "talk"}


async def settled_scrape(stack) -> Scrape:
    """A scrape once the workers have added up what they tally (once a second)."""
    previous = scrape(stack.django_url)
    for _ in range(10):
        await asyncio.sleep(1.2)
        current = scrape(stack.django_url)
        if current.text == previous.text:
            return current
        previous = current
    return current


def test_metrics_are_not_served_through_nginx(stack):
    assert httpx.get(f"{stack.http_url}/metrics", timeout=10).status_code == 404
    assert httpx.get(f"{stack.http_url}/metrics/", timeout=10).status_code == 404
    direct = httpx.get(f"{stack.django_url}/metrics", timeout=10)
    assert direct.status_code == 200
    assert "realtime_group_send_seconds" in direct.text
    # nginx's own figures, on a port of its own for the exporter.
    status = httpx.get(f"http://127.0.0.1:{stack.nginx_status_port}/stub_status", timeout=10)
    assert status.status_code == 200 and status.text.startswith("Active connections:")


async def clients_on_every_worker(stack, room: str) -> list[ChatClient]:
    """A ChatClient held open on each worker (and the spares one_per_worker made)."""

    async def connect():
        client = ChatClient(stack.http_url, room, f"m{uuid.uuid4().hex[:6]}")
        await client.connect()
        return client, client.worker_pid

    chosen, spares = await one_per_worker(stack.gunicorn_workers(), connect)
    return [*chosen.values(), *spares]


async def test_one_scrape_counts_the_sockets_of_every_worker(stack):
    before = scrape(stack.django_url).value("realtime_sockets_open", **TALK)
    clients = await clients_on_every_worker(stack, f"metrics-{uuid.uuid4().hex[:8]}")
    try:
        assert len({client.worker_pid for client in clients}) == 2
        # Any one worker answers the scrape; it adds up both workers' files.
        for _ in range(4):
            held = scrape(stack.django_url).value("realtime_sockets_open", **TALK)
            assert held - before == len(clients)
    finally:
        for client in clients:
            await client.close()
    # Each worker counts a socket out once its consumer has handled the disconnect, after
    # the close handshake the client waited for: asked until then (10 s at most).
    for _ in range(50):
        await asyncio.sleep(0.2)
        if scrape(stack.django_url).value("realtime_sockets_open", **TALK) == before:
            break
    assert scrape(stack.django_url).value("realtime_sockets_open", **TALK) == before


async def test_each_socket_metric_moves_with_what_it_counts(stack):
    room = f"metrics-{uuid.uuid4().hex[:8]}"
    before = await settled_scrape(stack)
    clients = await clients_on_every_worker(stack, room)
    sender, others = clients[0], clients[1:]
    receivers = len(clients)
    messages = 5
    try:
        for n in range(messages):
            await sender.say(f"metric {n}")
        for client in others:
            await client.wait_for(lambda f: f.get("text") == f"metric {messages - 1}")
        # One error frame of each kind the base consumer sends.
        bad = {"bad_json": "{not json", "binary": b"\x00", "unknown_type": {"type": "nope"}}
        for frame in bad.values():
            await sender.send_frame(frame)
            await sender.wait_for(lambda f: f.get("type") == "error")
        await sender.send_frame({"type": "message", "nickname": "", "text": ""})
        await sender.wait_for(lambda f: f.get("type") == "error")
        # A resume: the last client comes back with its position.
        await others[-1].close()
        await others[-1].connect()
        # Refused handshakes: a foreign page, and a room name the app refuses.
        with pytest.raises(websockets.InvalidStatus) as refused:
            await websockets.connect(
                ws_url(stack.http_url, f"/ws/talk/{room}/"), origin="http://evil.example"
            )
        assert describe_refusal(refused.value) == "HTTP 403"
        invalid = await websockets.connect(
            ws_url(stack.http_url, "/ws/talk/" + "x" * 120 + "/"), origin=stack.http_url
        )
        await invalid.recv()
        with pytest.raises(websockets.ConnectionClosed):
            await invalid.recv()
        # A flood past the rate limit (20 in a burst, 10 a second).
        for n in range(40):
            await sender.send_frame({"type": "nope", "n": n})
        # Each frame gets one error frame: unknown type, or dropped by the limit.
        details = [
            (await sender.wait_for(lambda f: f.get("type") == "error"))["detail"] for _ in range(40)
        ]
        assert any("rate limit" in detail for detail in details)
    finally:
        for client in clients:
            await client.close()
    after = await settled_scrape(stack)

    def moved(name, **labels):
        return after.value(name, **labels) - before.value(name, **labels)

    frames = messages + len(bad) + 1 + 40
    assert moved("realtime_frames_received_total", **TALK) == frames
    assert moved("realtime_frames_received_bytes_total", **TALK) > frames
    assert moved("realtime_group_send_seconds_count") >= messages
    # Every receiver's socket sent each message once, and timed how late it came.
    assert moved("realtime_delivery_lag_seconds_count", **TALK) == messages * receivers
    assert moved("realtime_delivery_lag_seconds_bucket", le="+Inf", **TALK) == messages * receivers
    assert moved("realtime_frames_sent_total", **TALK) >= messages * receivers
    assert moved("realtime_frames_sent_bytes_total", **TALK) > 0
    errors = {kind: moved("realtime_error_frames_total", kind=kind, **TALK) for kind in bad}
    assert errors["bad_json"] == errors["binary"] == 1
    assert moved("realtime_error_frames_total", kind="invalid", **TALK) == 1
    # The flood: each of its 40 frames is an unknown type, or dropped by the limit.
    dropped = moved("realtime_error_frames_total", kind="rate_limit", **TALK)
    assert dropped >= 1 and errors["unknown_type"] + dropped == 1 + 40
    assert moved("realtime_frames_dropped_total", **TALK) == moved(
        "realtime_error_frames_total", kind="rate_limit", **TALK
    )
    assert moved("realtime_resumes_total", recovered="true", **TALK) == 1
    assert moved("realtime_handshakes_accepted_total", **TALK) == receivers + 1
    assert moved("realtime_handshakes_refused_total", reason="origin") == 1
    assert moved("realtime_handshakes_refused_total", reason="invalid_room", **TALK) == 1
    # The clients closed normally.
    assert moved("realtime_socket_closes_total", code="1000", **TALK) == receivers + 1
    assert moved("realtime_sockets_open", **TALK) == 0


async def test_http_and_database_metrics_come_from_django_prometheus(stack):
    before = await settled_scrape(stack)
    for _ in range(3):
        assert httpx.get(f"{stack.http_url}/talk/", timeout=10).status_code == 200
    assert httpx.get(f"{stack.http_url}/readyz", timeout=10).status_code == 200
    after = await settled_scrape(stack)
    name = "django_http_responses_total_by_status_view_method_total"
    assert (
        after.value(name, status="200", view="talk:index")
        - before.value(name, status="200", view="talk:index")
        == 3
    )
    # /readyz asks MySQL through the instrumented backend.
    executed = "django_db_execute_total"
    assert after.value(executed, vendor="mysql") > before.value(executed, vendor="mysql")
    assert json.loads(httpx.get(f"{stack.http_url}/readyz", timeout=10).text)["status"] == "ok"


async def test_restarted_workers_keep_their_counts_and_leave_no_files(stack):
    """prometheus-client leaves a dead worker's files behind (client_python#275):
    Gunicorn's child_exit folds them into an archive, so the folder holds only the live
    processes' files however often workers restart, and no count is lost."""
    room = f"metrics-{uuid.uuid4().hex[:8]}"
    clients = await clients_on_every_worker(stack, room)
    for client in clients:
        await client.say("before the restarts")
    for client in clients:
        await client.close()
    before = (await settled_scrape(stack)).value("realtime_frames_received_total", **TALK)
    for _ in range(3):
        workers = stack.gunicorn_workers()
        for pid in workers:
            os.kill(pid, signal.SIGTERM)
        stack.reloaded(workers)
    after = scrape(stack.django_url).value("realtime_frames_received_total", **TALK)
    assert after == before
    workers = stack.gunicorn_workers()
    master = psutil.Process(workers[0]).ppid()
    owners = {path.stem.rsplit("_", 1)[1] for path in stack.metrics_dir.iterdir()}
    assert owners <= {*map(str, workers), str(master), "archive"}, owners
    assert "archive" in owners
