"""`docker compose up -d --scale django=3` in development, from nothing: the replicas
migrate one at a time, each gets its own debugging port, and nginx, never restarted,
spreads HTTP requests and WebSockets over the replicas it finds in Docker's DNS,
including ones removed or added after it started. The same stack runs the monitoring
override: Prometheus finds the three replicas and the exporters, and what it reports
is what the clients did."""

import asyncio
import contextlib
import json
import math
import time
import uuid

import httpx
import pytest
import websockets
import yaml

from proving_ground.clients import ChatClient, one_per_server, ws_url
from proving_ground.faults import closed_within, everyone_hears
from proving_ground.stacks.compose import ROOT
from proving_ground.stacks.docker import MONITORING_FILE, DockerStack
from proving_ground.stacks.prometheus import Prometheus

MONITORING = ("docker-compose.yml", MONITORING_FILE)
DASHBOARD = ROOT / "Grafana/dashboards/channels-stack.json"
# Seconds for a count to reach Prometheus: the workers' next flush of their tallies (once
# a second), then the next scrape (Prometheus/prometheus.yml).
SCRAPE_AND_FLUSH = 2 + int(
    yaml.safe_load((ROOT / "Prometheus/prometheus.yml").read_text())["global"][
        "scrape_interval"
    ].removesuffix("s")
)


@pytest.fixture(scope="module")
def replicated():
    """A fresh development stack (empty volumes) with the monitoring override, started
    with three django replicas."""
    stack = DockerStack(files=MONITORING)
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


def prometheus_of(stack) -> Prometheus:
    address = stack.compose("port", "prometheus", "9090").stdout.strip()
    prometheus = Prometheus(f"http://127.0.0.1:{address.rsplit(':', 1)[1]}")
    # Up once it has scraped every target at least once.
    prometheus.wait_for('count(up{job="django"})', 3, timeout=120)
    return prometheus


def test_prometheus_scrapes_every_replica_and_exporter(replicated):
    prometheus = prometheus_of(replicated)
    assert prometheus.wait_for('sum(up{job="django"})', 3) == 3
    for job in ("nginx", "redis", "mysql", "prometheus"):
        assert prometheus.wait_for(f'up{{job="{job}"}}', 1) == 1, job
    # Each exporter reaches its server (the MySQL exporter with its own user).
    for metric in ("nginx_up", "redis_up", "mysql_up"):
        assert prometheus.wait_for(metric, 1) == 1, metric
    targets = {
        t["labels"]["instance"] for t in prometheus.targets() if t["labels"]["job"] == "django"
    }
    assert len(targets) == 3
    # The alert rules are loaded, healthy, and none fires on a healthy stack.
    rules = prometheus.rules()
    assert {rule["name"] for rule in rules} >= {
        "DjangoDown",
        "RedisDown",
        "MySQLDown",
        "NginxDown",
        "ChannelLayerFailing",
        "DeliveryLagHigh",
        "SlowClientsClosed",
        "HandshakesRefused",
    }
    assert {rule["health"] for rule in rules} == {"ok"}
    assert [rule["name"] for rule in rules if rule["state"] == "firing"] == []
    # promtool, in the same image: the config and rules are valid, and the rules' tests pass.
    for command in (
        ("check", "config", "/etc/prometheus/prometheus.yml"),
        ("test", "rules", "/etc/prometheus/alerts.test.yml"),
    ):
        result = replicated.compose(
            "run", "--rm", "--no-deps", "--entrypoint", "/bin/promtool", "prometheus", *command
        )
        assert "SUCCESS" in result.stdout + result.stderr


async def test_prometheus_counts_the_sockets_and_messages_of_all_replicas(replicated):
    prometheus = prometheus_of(replicated)
    open_sockets = 'sum(realtime_sockets_open{route="talk"}) or vector(0)'
    delivered = 'sum(realtime_delivery_lag_seconds_count{route="talk"}) or vector(0)'
    assert prometheus.wait_for(open_sockets, 0) == 0
    before_delivered = prometheus.settled(delivered)  # the earlier tests' all scraped
    replicas = replica_hostnames(replicated)
    room = f"monitored-{uuid.uuid4().hex[:10]}"
    clients = await one_per_server(replicated.http_url, room, replicas)
    extra = ChatClient(replicated.http_url, room, "extra")
    await extra.connect()
    clients.append(extra)
    try:
        held = await asyncio.to_thread(prometheus.wait_for, open_sockets, len(clients))
        assert held == len(clients)
        messages = 6
        for n in range(messages):
            await clients[n % len(clients)].say(f"counted {n}")
        last = f"counted {messages - 1}"
        for client in clients:  # say() read the sender's frames up to its own message
            if all(m["text"] != last for m in client.received):
                await client.wait_for(lambda f, last=last: f.get("text") == last, 10)
        received = sum(
            1 for client in clients for m in client.received if m["text"].startswith("counted")
        )
        assert received == messages * len(clients)
        # What the sockets sent, as Prometheus has it, is what the clients received.
        expected = before_delivered + received
        assert await asyncio.to_thread(prometheus.wait_for, delivered, expected) == expected
    finally:
        for client in clients:
            await client.close()
    assert prometheus.wait_for(open_sockets, 0) == 0


def panel_queries(dashboard: dict) -> dict[str, list[str]]:
    """Each panel's PromQL, with Grafana's $__rate_interval as it is at a 5 s scrape."""
    return {
        panel["title"]: [t["expr"].replace("$__rate_interval", "1m") for t in panel["targets"]]
        for panel in dashboard["panels"]
        if panel["type"] != "row"
    }


async def test_every_dashboard_panel_has_data(replicated):
    """Grafana cannot run here (no registry, no look-alike): its dashboard's queries run on
    the stack's Prometheus instead, after traffic, and each panel must show numbers."""
    prometheus = prometheus_of(replicated)
    room = f"dashboard-{uuid.uuid4().hex[:10]}"
    clients = await one_per_server(replicated.http_url, room, replica_hostnames(replicated))
    try:
        for n in range(5):
            await clients[n % len(clients)].say(f"charted {n}")
        # Page views before and after a scrape: a rate needs a series that was there
        # before it rose, and the per-view series of a replica begins with its first view.
        for _ in range(6):
            assert httpx.get(f"{replicated.http_url}/talk/", timeout=10).status_code == 200
        await asyncio.sleep(SCRAPE_AND_FLUSH)
        for _ in range(6):
            assert httpx.get(f"{replicated.http_url}/talk/", timeout=10).status_code == 200
        await clients[0].send_frame("{not json")  # an error frame, for its panel
        await clients[0].wait_for(lambda f: f.get("type") == "error")
    finally:
        for client in clients:
            await client.close()
    # Two scrapes after the traffic, so every rate has samples on both sides of it.
    prometheus.wait_for('sum(realtime_sockets_open{route="talk"}) or vector(0)', 0)
    time.sleep(11)
    empty = {}
    for title, queries in panel_queries(json.loads(DASHBOARD.read_text())).items():
        values = [
            float(sample["value"][1]) for query in queries for sample in prometheus.query(query)
        ]
        if not any(math.isfinite(value) for value in values):
            empty[title] = queries
    assert empty == {}


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


# What each fault and hostile client below must move, at least, as Prometheus sums it
# over the replicas: {PromQL selector: increase}. (The core layer's 1011 closes are
# test_faults.py's.)
EXPECTED_INCREASES = {
    "realtime_handshakes_accepted_total": 5,
    'realtime_handshakes_refused_total{reason="origin"}': 1,
    'realtime_handshakes_refused_total{reason="invalid_room"}': 1,
    'realtime_handshakes_refused_total{reason="layer_unavailable"}': 1,
    "realtime_frames_received_total": 24,
    "realtime_frames_received_bytes_total": 24,
    "realtime_frames_sent_total": 30,
    "realtime_frames_sent_bytes_total": 30,
    'realtime_error_frames_total{kind="bad_json"}': 1,
    'realtime_error_frames_total{kind="rate_limit"}': 1,
    "realtime_frames_dropped_total": 1,
    "realtime_group_send_seconds_count": 20,
    "realtime_delivery_lag_seconds_count": 40,
    'realtime_resumes_total{recovered="true"}': 1,
    "realtime_channel_layer_failures_total": 1,
    "realtime_slow_client_closes_total": 1,
    'realtime_socket_closes_total{code="4008"}': 1,
}


def totals(prometheus: Prometheus) -> dict[str, float]:
    return {name: prometheus.scalar(f"sum({name}) or vector(0)") for name in EXPECTED_INCREASES}


async def keep_reading(client: ChatClient) -> None:
    with contextlib.suppress(websockets.ConnectionClosed):
        while True:
            with contextlib.suppress(TimeoutError):
                await client.next_frame(timeout=1)


async def test_faults_and_hostile_clients_move_their_counters_in_prometheus(replicated):
    """Every metric of docs/monitoring.md's table that the default layer moves, moved
    through the real path and read back from Prometheus: a client that stops reading,
    hostile frames, and Redis stopped (no socket closes; a handshake meanwhile is told
    to try again later). Last in the module: it stops Redis."""
    prometheus = prometheus_of(replicated)
    prometheus.settled("sum(realtime_frames_sent_total)")
    before = totals(prometheus)
    room = f"faulted-{uuid.uuid4().hex[:10]}"
    clients = await one_per_server(replicated.http_url, room, replica_hostnames(replicated))
    try:
        # A client that stops reading, in a room that gets 20 broadcasts of 2 kB.
        stalled = ChatClient(replicated.http_url, room, "stalled")
        await stalled.connect(stalling=True)
        text = "z" * 1900
        for n in range(20):
            await clients[n % len(clients)].say(f"{n}-{text}", timeout=15)
        # The others go on reading (unread, their own pongs would stall too).
        readers = [asyncio.create_task(keep_reading(client)) for client in clients]
        # Hostile input: a bad frame, a flood past the rate limit, a foreign page, a
        # room name the app refuses.
        await clients[0].send_frame("{not json")
        for n in range(30):
            await clients[1].send_frame({"type": "nope", "n": n})
        with contextlib.suppress(websockets.InvalidStatus):
            await websockets.connect(
                ws_url(replicated.http_url, f"/ws/talk/{room}/"), origin="http://evil.example"
            )
        with contextlib.suppress(websockets.ConnectionClosed):
            invalid = await websockets.connect(
                ws_url(replicated.http_url, "/ws/talk/" + "x" * 120 + "/"),
                origin=replicated.http_url,
            )
            await invalid.recv()
            await invalid.recv()
        # The stalled socket is closed by the server (a pong missed, or a send held up);
        # read only then, or reading would un-stall it. Back, it resumes what it missed.
        slow = "sum(realtime_slow_client_closes_total) or vector(0)"
        limit = before["realtime_slow_client_closes_total"] + 1
        # In a thread: the event loop must go on answering the other sockets' pings.
        waited = await asyncio.to_thread(prometheus.wait_until, slow, lambda v: v >= limit, 60)
        assert waited >= limit
        assert await closed_within(stalled, 15) == 4008
        await stalled.reconnect()
        assert stalled.resumes["recovered"] == 1
        await stalled.close()
        for reader in readers:
            reader.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
        # Redis stops: the workers' subscriber connections fail (layer failures), no
        # socket closes, and a handshake meanwhile is closed with 1013 "try again later".
        await asyncio.to_thread(replicated.stop_service, "redis")
        late = ChatClient(replicated.http_url, room, "late")
        with pytest.raises(websockets.ConnectionClosed) as refused:
            await late.connect()
        assert refused.value.rcvd.code == 1013
        codes = await asyncio.gather(*(closed_within(client, 5) for client in clients))
        assert codes == [None] * len(clients), codes
        await asyncio.to_thread(replicated.start_service, "redis")
        # Back: the workers subscribe again and the room flows on the same sockets.
        await everyone_hears(clients[0], clients[1:], "after Redis came back")
    finally:
        for client in clients:
            await client.close()
    missing = {}
    for name, increase in EXPECTED_INCREASES.items():
        expression = f"sum({name}) or vector(0)"
        value = prometheus.wait_until(expression, lambda v, n=name, i=increase: v >= before[n] + i)
        if value < before[name] + increase:
            missing[name] = f"{before[name]} -> {value}, expected +{increase}"
    assert missing == {}
