"""The stack's limits in containers with the production settings, behind a TLS proxy as
production is: nginx's per client address, which counts the address that proxy reports
(X-Forwarded-For from NGINX_REAL_IP_FROM; here the test is that proxy, reaching nginx from
Docker's bridge), never the proxy's own, which every client shares; Django's per user and
per worker, the worker's cap derived from the container's memory limit; the sign-in
throttle, with a short lockout to see end. The scenarios are `make faults`' own
(faults/limits.py)."""

import httpx
import pytest

from proving_ground import faults
from proving_ground.faults import limits
from proving_ground.stacks.compose import COMPOSE_FILE, PROD_FILE
from proving_ground.stacks.docker import DockerStack, allow_host, write_prod_env

HOST = "chat.example.com"
# Two clients behind the proxy (documentation addresses, RFC 5737).
CLIENT, OTHER_CLIENT = "203.0.113.1", "203.0.113.2"
# Where the container's cgroup keeps the most memory it ever held (v1, then v2).
PEAK_FILES = ("/sys/fs/cgroup/memory/memory.max_usage_in_bytes", "/sys/fs/cgroup/memory.peak")


@pytest.fixture(scope="module")
def prod():
    # The test stands in for the proxy, reaching nginx through Docker's bridge, whose
    # subnet Docker picks from its pools (172.16.0.0/12, then 192.168.0.0/16): trust
    # wherever it comes from, as an operator trusts their proxy's address.
    environment = {
        "nginx": {"NGINX_REAL_IP_FROM": "0.0.0.0/0"},
        "django": {"SIGN_IN_LOCKOUT": limits.STACK_ENV["SIGN_IN_LOCKOUT"]},
    }
    stack = DockerStack(
        files=(COMPOSE_FILE.name, PROD_FILE.name), environment=environment, address_limits=True
    )
    write_prod_env(stack.dir)
    allow_host(stack.dir, HOST)
    stack.site_host = HOST  # faults.limits.Front: clients as the proxy passes them on
    with stack:
        yield stack


@pytest.mark.parametrize(
    "scenario",
    [limits.sockets_from_one_address, limits.sockets_of_one_user, limits.password_guessing],
    ids=lambda scenario: scenario.__name__,
)
async def test_a_hostile_client_is_refused_and_harms_no_one(prod, scenario):
    outcome = await faults.run(scenario, prod, "hostile")
    assert outcome.survived, outcome.detail


async def test_a_socket_flood_gets_1013_under_the_memory_limit_with_no_restart(prod):
    container = prod.container("django")
    memory_limit = container["HostConfig"]["Memory"]
    assert memory_limit > 0, "the production override sets Django's memory limit"
    peaks = []

    def peak() -> int:
        script = f"for f in {' '.join(PEAK_FILES)}; do [ -r $f ] && exec cat $f; done; exit 1"
        return int(prod.exec("django", "sh", "-c", script).stdout)

    async def at_the_height():
        peaks.append(peak())

    async def socket_flood(stack, outcome):
        await limits.socket_flood(stack, outcome, memory_check=at_the_height)

    outcome = await faults.run(socket_flood, prod, "hostile")
    assert outcome.survived, outcome.detail
    assert outcome.clients == 4 and outcome.account.clean
    # Shed well before the limit where the kernel kills the container.
    assert peaks[0] < 0.9 * memory_limit, f"peak {peaks[0] >> 20} of {memory_limit >> 20} MiB"
    after = prod.container("django")
    assert after["RestartCount"] == 0 and not after["State"]["OOMKilled"]
    assert after["State"]["StartedAt"] == container["State"]["StartedAt"]
    print(f"{outcome.detail}; container peak {peaks[0] >> 20} of {memory_limit >> 20} MiB")


def test_one_clients_sign_ins_past_the_burst_get_429_while_another_is_served(prod):
    burst = int(limits.shipped_limits()["NGINX_SIGN_IN_BURST"])
    url = f"{prod.http_url}/accounts/login/"
    form = {"username": "x", "password": "y"}
    proxied = {"Host": HOST, "X-Forwarded-Proto": "https"}
    with httpx.Client(timeout=10) as client:
        statuses = [
            client.post(url, data=form, headers={**proxied, "X-Forwarded-For": CLIENT}).status_code
            for _ in range(burst + 10)
        ]
        assert 429 in statuses and statuses.index(429) >= burst, statuses
        other = {**proxied, "X-Forwarded-For": OTHER_CLIENT}
        assert client.post(url, data=form, headers=other).status_code == 403
