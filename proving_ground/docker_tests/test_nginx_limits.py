"""Production nginx under its container's limits (docker-compose.prod.yml): as many
workers as the CPU limit allows, rounded up, not one per CPU of the host; and the memory
those workers would need with every connection nginx.conf lets them take (two per
proxied WebSocket), measured per socket here, inside the memory limit. The stack runs
the monitoring override beside production, with the production secrets, and with guests
off (REALTIME_GUESTS=0): only signed-in users open sockets, signed in over HTTPS as the
TLS proxy in front of nginx passes it on."""

import asyncio
import json
import math
import re
import uuid

import httpx
import psutil
import pytest
import websockets

from proving_ground.clients import ws_url
from proving_ground.clients.site import SiteUser
from proving_ground.stacks.compose import COMPOSE_FILE, PROD_FILE, ROOT
from proving_ground.stacks.docker import MONITORING_FILE, DockerStack, allow_host, write_prod_env
from proving_ground.stacks.prometheus import Prometheus

HOST = "chat.example.com"
SOCKETS = 500  # held through nginx to measure what one costs its worker
MiB = 1024 * 1024


@pytest.fixture(scope="module")
def prod():
    # One member holds every measured socket: past the cap a user has in production
    # (REALTIME_USER_SOCKETS), which is not what this measures.
    django = {"REALTIME_GUESTS": "0", "REALTIME_USER_SOCKETS": str(SOCKETS)}
    stack = DockerStack(
        files=(COMPOSE_FILE.name, PROD_FILE.name, MONITORING_FILE), environment={"django": django}
    )
    write_prod_env(stack.dir)
    allow_host(stack.dir, HOST)
    with stack:
        yield stack


@pytest.fixture(scope="module")
def member(prod) -> SiteUser:
    return SiteUser(prod.http_url, https_host=HOST).sign_up(f"member-{uuid.uuid4().hex[:8]}")


def connect(prod, path: str, headers: dict | None = None):
    return websockets.connect(
        ws_url(prod.http_url, path),
        origin=f"https://{HOST}",
        additional_headers=headers or {},
        open_timeout=10,
    )


async def test_with_guests_off_a_socket_needs_a_session_or_a_ticket(prod, member):
    path = f"/ws/talk/members-{uuid.uuid4().hex[:8]}/"
    async with connect(prod, path) as guest:
        refused = json.loads(await guest.recv())
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await guest.recv()
    assert (refused["type"], refused["detail"]) == ("error", "sign in first")
    assert closed.value.rcvd.code == 4401
    for query, headers in (("", member.socket_headers), (f"?ticket={member.ticket()}", {})):
        async with connect(prod, path + query, headers) as socket:
            assert json.loads(await socket.recv())["type"] == "history"
            # The name in a frame is ignored: the author is the session's or ticket's user.
            frame = {"type": "message", "nickname": "someone else", "text": "signed in"}
            await socket.send(json.dumps(frame))
            while (frame := json.loads(await socket.recv()))["type"] not in ("message", "error"):
                pass
            assert frame["nickname"] == member.username and not frame["guest"], frame


def nginx_processes(stack: DockerStack) -> tuple[psutil.Process, list[psutil.Process]]:
    """nginx's master (under the container's init) and its workers, as host processes."""
    init = psutil.Process(stack.container("nginx")["State"]["Pid"])
    (master,) = [child for child in init.children() if child.name() == "nginx"]
    return master, master.children()


def unique(processes) -> int:
    """Memory only these processes hold (USS): shared pages are not counted per worker."""
    return sum(process.memory_full_info().uss for process in processes)


def test_nginx_workers_follow_the_cpu_limit(prod):
    limits = prod.config()["services"]["nginx"]["deploy"]["resources"]["limits"]
    host_config = prod.container("nginx")["HostConfig"]
    assert host_config["NanoCpus"] == int(float(limits["cpus"]) * 1e9)  # the limit applies
    expected = math.ceil(float(limits["cpus"]))
    assert expected < psutil.cpu_count(), "here `auto` would start as many: no proof"
    _, workers = nginx_processes(prod)
    assert len(workers) == expected
    assert f"worker_processes {len(workers)}" in prod.log_tail("nginx", 200)


async def test_every_connection_nginx_allows_fits_its_memory_limit(prod, member):
    limit = prod.container("nginx")["HostConfig"]["Memory"]
    assert limit == int(
        prod.config()["services"]["nginx"]["deploy"]["resources"]["limits"]["memory"]
    )
    conf = (ROOT / "nginx/nginx.conf").read_text()
    connections = int(re.search(r"worker_connections\s+(\d+);", conf).group(1))
    master, workers = nginx_processes(prod)
    before = unique(workers)

    sockets = []
    try:
        for _ in range(SOCKETS):
            socket = await connect(prod, "/ws/talk/nginx-limits/", member.socket_headers)
            sockets.append(socket)
            assert '"history"' in await asyncio.wait_for(socket.recv(), 10)
        held = unique(workers)
        per_socket = (held - before) / SOCKETS
        # Each worker full: worker_connections / 2 sockets (client side and Django side).
        full = unique([master]) + len(workers) * (
            before / len(workers) + per_socket * connections / 2
        )
        print(
            f"\nnginx: {len(workers)} worker(s), {before / MiB:.1f} MiB idle,"
            f" {per_socket / 1024:.1f} KiB per proxied WebSocket;"
            f" {connections} connections a worker -> {full / MiB:.1f} MiB"
            f" of the {limit / MiB:.0f} MiB limit"
        )
        assert per_socket > 0, "holding sockets cost the workers nothing: not measured"
        assert full < limit
    finally:
        await asyncio.gather(*(socket.close() for socket in sockets))


def test_monitoring_runs_beside_production(prod):
    """Prometheus scrapes the production django and every exporter, which log in with the
    production secrets; /metrics is not served on the public port."""
    assert httpx.get(f"{prod.http_url}/metrics", headers={"Host": HOST}).status_code == 404
    address = prod.compose("port", "prometheus", "9090").stdout.strip()
    prometheus = Prometheus(f"http://127.0.0.1:{address.rsplit(':', 1)[1]}")
    for expression in (
        'up{job="django"}',
        'up{job="nginx"}',
        'up{job="redis"}',
        'up{job="mysql"}',
        "nginx_up",
        "redis_up",
        "mysql_up",
    ):
        assert prometheus.wait_for(expression, 1, timeout=120) == 1, expression
