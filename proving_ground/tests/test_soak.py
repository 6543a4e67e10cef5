"""Memory under connection churn, bounded: the short form of `make soak`.

The workers' RSS is measured after a warm-up and again after a churn of chat and echo
sessions; its growth per session must stay under a bound set from measured runs (see
BOUND_KIB). The same measurement of a stack with a known leak of the size issue 13
reported must break the bound, so the test can fail. DEBUG is off: with it on, Django's
per-connection query log grows by design until it holds 9000 queries; that is no leak.
"""

import asyncio

from proving_ground.compose import ROOT
from proving_ground.native import NativeStack, entrypoint_serving
from proving_ground.soak import soak

# Workers' RSS growth per churned session after warm-up, KiB. On this machine a flat run
# of this test measures +0.5 to +0.8 KiB per session (allocator slack, caches filling);
# the leak issue 13 reported was about 4 KiB per session with DEBUG off. The bound lies
# between them.
BOUND_KIB = 2.0
ISSUE_13_LEAK_KIB = 4.0
ENV = {"WEB_CONCURRENCY": "2", "DEBUG": "0", "DEBUG_ENDPOINTS": "1"}  # echo sessions too


def growth_per_session(stack: NativeStack) -> float:
    result = asyncio.run(
        soak(
            stack,
            "dev",
            "native",
            duration=30,
            warmup=15,
            interval=15,
            clients=40,
            idle=20,
            cooldown=5,
            report=print,
        )
    )
    growth = result.rss_growth_per_session_kib()
    print(f"RSS growth: {growth:+.2f} KiB per session over {result.sessions_after_warmup}")
    assert result.errors == 0, result.last_error
    assert result.sessions_after_warmup > 1000
    # Every session and idle socket got every message of its room since it joined.
    assert result.accounted > 1000 and result.account.clean, result.account
    assert result.offset_holes == 0
    return growth


def test_memory_stays_flat_under_churn():
    with NativeStack(django_env=ENV) as stack:
        assert growth_per_session(stack) < BOUND_KIB


def test_a_leak_of_issue_13s_size_breaks_the_bound():
    # The stack's own start-up, then Gunicorn serving the same app wrapped in a leak.
    command = entrypoint_serving("proving_ground.leaky_app:application")
    env = {**ENV, "LEAK_KIB": str(ISSUE_13_LEAK_KIB), "PYTHONPATH": str(ROOT)}
    with NativeStack(django_env=env, django_command=command) as stack:
        assert growth_per_session(stack) >= BOUND_KIB
