"""The stack's limits on the native stack: nginx's per address as shipped
(nginx/.env.nginx), Django's as config.py ships them but a small cap per worker and a
short lockout (faults.limits.STACK_ENV). Each hostile client is refused as documented
while every other is served and loses nothing."""

import time

import httpx
import pytest

from proving_ground import faults
from proving_ground.faults import limits
from proving_ground.stacks.native import NativeStack

# Another address of this machine's loopback network: another client, as nginx sees it.
SECOND_ADDRESS = "127.0.0.2"


@pytest.fixture(scope="module")
def limits_stack():
    with NativeStack(django_env=limits.STACK_ENV, address_limits=True) as stack:
        yield stack


@pytest.mark.parametrize("scenario", limits.HOSTILE, ids=lambda scenario: scenario.__name__)
async def test_a_hostile_client_is_refused_and_harms_no_one(limits_stack, scenario):
    outcome = await faults.run(scenario, limits_stack, "hostile")
    assert outcome.survived, outcome.detail
    assert outcome.stored == len(outcome.acknowledged)


def test_sign_in_posts_past_the_burst_get_429_with_retry_after_and_a_page(limits_stack):
    shipped = limits.shipped_limits()
    burst = int(shipped["NGINX_SIGN_IN_BURST"])
    per_second = int(shipped["NGINX_SIGN_IN_RATE"].removesuffix("r/m")) / 60
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
        assert refused.headers["Retry-After"] == shipped["NGINX_RETRY_AFTER"]
        assert "Too many requests" in refused.text
        # Reading the page is not limited; another address still signs in.
        assert client.get(url).status_code == 200
    transport = httpx.HTTPTransport(local_address=SECOND_ADDRESS)
    with httpx.Client(transport=transport, timeout=10) as other:
        assert other.post(url, data={"username": "x", "password": "y"}).status_code == 403
