"""nginx's per-address limits as shipped, in containers with the production settings,
behind a TLS proxy as production is: the limits count the client address that proxy
reports (X-Forwarded-For from NGINX_REAL_IP_FROM; here the test is that proxy, reaching
nginx from Docker's bridge), never the proxy's own, which every client shares."""

import httpx
import pytest
import websockets

from proving_ground.stacks.compose import COMPOSE_FILE, PROD_FILE
from proving_ground.stacks.docker import DockerStack, allow_host, write_prod_env
from proving_ground.stacks.native import LOCALHOST
from proving_ground.tests.test_address_limits import assert_one_address_capped, shipped_limits

HOST = "chat.example.com"
# Two clients behind the proxy (documentation addresses, RFC 5737).
CLIENT, OTHER_CLIENT = "203.0.113.7", "203.0.113.8"


@pytest.fixture(scope="module")
def prod():
    # The test stands in for the proxy, reaching nginx through Docker's bridge, whose
    # subnet Docker picks from its pools (172.16.0.0/12, then 192.168.0.0/16): trust
    # wherever it comes from, as an operator trusts their proxy's address.
    trust_the_proxy = {"nginx": {"NGINX_REAL_IP_FROM": "0.0.0.0/0"}}
    stack = DockerStack(
        files=(COMPOSE_FILE.name, PROD_FILE.name), environment=trust_the_proxy, address_limits=True
    )
    write_prod_env(stack.dir)
    allow_host(stack.dir, HOST)
    with stack:
        yield stack


def proxied(client: str) -> dict[str, str]:
    """What the TLS proxy in front adds to a client's request."""
    return {"X-Forwarded-Proto": "https", "X-Forwarded-For": client}


def connect(stack, path: str, client: str):
    """A socket for HOST's page, sent to the published port as the proxy would."""
    return websockets.connect(
        f"ws://{HOST}:{stack.http_port}{path}",
        host=LOCALHOST,
        port=stack.http_port,
        origin=f"https://{HOST}",
        additional_headers=proxied(client),
        open_timeout=10,
        proxy=None,
    )


async def test_one_clients_sockets_past_the_cap_get_429_while_another_chats(prod):
    await assert_one_address_capped(
        lambda path: connect(prod, path, CLIENT), lambda path: connect(prod, path, OTHER_CLIENT)
    )


def test_one_clients_sign_ins_past_the_burst_get_429_while_another_is_served(prod):
    burst = int(shipped_limits()["NGINX_SIGN_IN_BURST"])
    url = f"{prod.http_url}/accounts/login/"
    form = {"username": "x", "password": "y"}
    with httpx.Client(timeout=10) as client:
        statuses = [
            client.post(url, data=form, headers={"Host": HOST, **proxied(CLIENT)}).status_code
            for _ in range(burst + 10)
        ]
        assert 429 in statuses and statuses.index(429) >= burst, statuses
        other = {"Host": HOST, **proxied(OTHER_CLIENT)}
        assert client.post(url, data=form, headers=other).status_code == 403
