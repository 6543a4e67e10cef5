"""The Sentinel failover, again and again: each run a fresh stack of
docker-compose.sentinel.yml, its Redis primary killed while clients chat.

    make failover             # 10 runs (RUNS=N for another number); about 1.5 min a run

Prints each run's figures as it ends, then the table: seconds from the kill until the
room's broadcasts flow and every steady chatter is back, and what the clients were
refused meanwhile. Exits 1 if any run failed or took RECOVERY_BOUND_S or longer.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time

from proving_ground import faults, reports
from proving_ground.stacks.compose import COMPOSE_FILE
from proving_ground.stacks.docker import DockerStack

FILES = (COMPOSE_FILE.name, "docker-compose.sentinel.yml")
# With a password, as production has: Redis, its replica, the Sentinels and Django.
PASSWORD = {"REDIS_PASSWORD": "sentinel-test-password"}
ENVIRONMENT = dict.fromkeys(("redis", "redis-replica", "sentinel", "django"), PASSWORD)
# What a failover may take: 2 s until the Sentinels call the primary down, their vote,
# the promotion, and the clients' backoff.
RECOVERY_BOUND_S = 15


def sentinel_stack() -> DockerStack:
    return DockerStack(files=FILES, environment=ENVIRONMENT)


def one_run() -> tuple[faults.Outcome, str]:
    """One fresh stack, one failover; the outcome and, if it failed or was slow, logs."""
    with sentinel_stack() as stack:
        outcome = asyncio.run(faults.run(faults.redis_primary_killed, stack, "fault"))
        slow = outcome.recovery_s is None or outcome.recovery_s >= RECOVERY_BOUND_S
        logs = ""
        if not outcome.survived or slow:
            logs = stack.compose(
                "logs", "--timestamps", "--tail", "300", "django", "sentinel", check=False
            ).stdout
    return outcome, logs


def main() -> int:
    parser = reports.parser(__doc__)
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    started, outcomes = time.monotonic(), []
    for n in range(1, args.runs + 1):
        outcome, logs = one_run()
        outcomes.append(outcome)
        recovery = "-" if outcome.recovery_s is None else f"{outcome.recovery_s:.1f} s"
        verdict = "ok" if outcome.survived else "FAILED"
        print(f"run {n}: {verdict}, recovered in {recovery}; {outcome.detail}", flush=True)
        if logs:
            print(f"--- run {n}: django and sentinel logs\n{logs}", flush=True)
    figures = [o.recovery_s for o in outcomes if o.survived and o.recovery_s is not None]
    good = [
        o
        for o in outcomes
        if o.survived and o.recovery_s < RECOVERY_BOUND_S and o.stored == len(o.acknowledged)
    ]
    print(f"\nrecovery after the primary was killed, {args.runs} fresh stacks (s):")
    print("  " + "  ".join(f"{f:.1f}" for f in figures))
    if figures:
        print(f"  median {statistics.median(figures):.1f}, max {max(figures):.1f}")
    print(
        f"runs under {RECOVERY_BOUND_S} s with every message stored: {len(good)} of"
        f" {args.runs}; {time.monotonic() - started:.0f} s in all"
    )
    return 0 if len(good) == args.runs else 1


if __name__ == "__main__":
    sys.exit(main())
