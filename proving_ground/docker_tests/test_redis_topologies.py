"""The channel layer on more than one Redis, in containers: Sentinel failover
(docker-compose.sentinel.yml) and shards (docker-compose.sharded.yml)."""

import functools
import json
import time
import uuid

import psutil
import pytest

from proving_ground import faults
from proving_ground.clients import ChatClient
from proving_ground.faults import failover
from proving_ground.stacks.compose import COMPOSE_FILE
from proving_ground.stacks.docker import DockerStack


def stall_docker_dns(seconds: float = 4) -> None:
    """Docker's DNS for the containers is served by dockerd: stopped for `seconds`, every
    name lookup in a container waits, as on an engine too busy to answer at once."""
    time.sleep(1)  # the Sentinels have noticed the primary is gone
    found = [p for p in psutil.process_iter(["name"]) if p.info["name"] == "dockerd"]
    assert len(found) == 1, "this test stops the local dockerd: run it as root beside it"
    dockerd = found[0]
    dockerd.suspend()
    try:
        time.sleep(seconds)
    finally:
        dockerd.resume()


async def test_killing_the_redis_primary_fails_over_with_no_message_lost():
    # Redis and Sentinel resolve names in their only thread: with host names in their
    # config, a lookup that took over 2 s put every Sentinel in TILT mode (no failover
    # for 30 s) and stalled the replica. So Docker's DNS stalls just after the kill, and
    # the scenario fails on any "+tilt". (`make failover` runs it without the stall.)
    with failover.sentinel_stack() as stack:
        scenario = functools.partial(faults.redis_primary_killed, after_kill=stall_docker_dns)
        scenario.__name__ = "redis_primary_killed, Docker's DNS stalled"
        outcome = await faults.run(scenario, stack, "fault")
    print(faults.table([outcome]))
    assert outcome.survived, outcome.detail
    # The steady chatters alone send a message a second each, through the failover.
    assert len(outcome.acknowledged) > 10
    assert outcome.stored == len(outcome.acknowledged)


# Which shard each name lives on, as the layer in the django container computes it
# (its consistent_hash: a group's subscriptions and publishes go to one shard).
SHARDS_OF = """
import json, os, sys
import django
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "channels_tutorial.settings")
django.setup()
from channels.layers import get_channel_layer
layer = get_channel_layer()
shards = {name: layer.consistent_hash(name) for name in sys.argv[1:]}
print(json.dumps({"hosts": len(layer.hosts), "shards": shards}))
"""
SHARD_SERVICES = ("redis", "redis-2")  # REDIS_URL's order in docker-compose.sharded.yml


def shards_of(stack, names: list[str]) -> dict:
    out = stack.exec("django", "python", "-c", SHARDS_OF, *names).stdout
    return json.loads(out.strip().splitlines()[-1])


def subscribers(stack, shard: int, channel: str) -> int:
    """PUBSUB NUMSUB: how many connections to that shard subscribe to `channel`."""
    run = f'REDISCLI_AUTH="$REDIS_PASSWORD" redis-cli pubsub numsub "{channel}"'
    name, count = stack.exec(SHARD_SERVICES[shard], "sh", "-c", run).stdout.split()
    return int(count)


@pytest.fixture(scope="module")
def sharded_stack():
    files = (COMPOSE_FILE.name, "docker-compose.sharded.yml")
    with DockerStack(files=files, environment={"django": {"WEB_CONCURRENCY": "3"}}) as running:
        yield running


async def test_group_broadcasts_go_through_the_shard_of_their_group(sharded_stack):
    from talk.rooms import room_group_name

    # Room names until one group lives on each shard: 40 names all on one is 2^-39.
    names = [f"shards-{uuid.uuid4().hex[:10]}" for _ in range(40)]
    found = shards_of(sharded_stack, [room_group_name(name) for name in names])
    assert found["hosts"] == 2
    on_shard = {found["shards"][room_group_name(name)]: name for name in names}
    assert set(on_shard) == {0, 1}, found
    for shard, name in sorted(on_shard.items()):
        clients = await faults.clients_on_distinct_workers(sharded_stack, name)
        # Each worker subscribes once, on the group's shard only (the layer's key names
        # are docs/fanout.md's).
        channel = f"realtime:group:{room_group_name(name)}"
        assert subscribers(sharded_stack, shard, channel) == len(clients) == 3
        assert subscribers(sharded_stack, 1 - shard, channel) == 0
        for sender in (clients[0], clients[-1]):
            others = [client for client in clients if client is not sender]
            await faults.everyone_hears(sender, others, f"from {sender.nickname}")
        for client in clients:
            await client.close()
        fresh = ChatClient(sharded_stack.http_url, name, "late")
        assert len((await fresh.connect())["messages"]) == 2
        await fresh.close()
