"""The channel layer on more than one Redis, in containers: Sentinel failover
(docker-compose.sentinel.yml) and shards (docker-compose.sharded.yml)."""

import functools
import json
import time
import uuid

import psutil
import pytest

from proving_ground import failover, faults
from proving_ground.client import ChatClient
from proving_ground.compose import COMPOSE_FILE
from proving_ground.docker import DockerStack


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


# Which shard each channel of a group lives on, as the layer in the django container
# computes it (channels-redis's consistent_hash; the group's key is private: _group_key).
SHARDS_OF_MEMBERS = """
import json, os, sys
import django
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "channels_tutorial.settings")
django.setup()
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
layer = get_channel_layer()
async def members(group):
    connection = layer.connection(layer.consistent_hash(group))
    names = await connection.zrange(layer._group_key(group), 0, -1)
    return {n.decode(): layer.consistent_hash(n.decode()) for n in names}
print(json.dumps({"hosts": len(layer.hosts), "members": async_to_sync(members)(sys.argv[1])}))
"""


def shards_of_members(stack, group: str) -> dict:
    out = stack.exec("django", "python", "-c", SHARDS_OF_MEMBERS, group).stdout
    return json.loads(out.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def sharded_stack():
    # Four workers: each picks a random channel prefix, which decides its shard.
    files = (COMPOSE_FILE.name, "docker-compose.sharded.yml")
    with DockerStack(files=files, environment={"django": {"WEB_CONCURRENCY": "4"}}) as running:
        yield running


async def test_a_group_broadcast_reaches_sockets_on_both_redis_shards(sharded_stack):
    from talk.rooms import room_group_name

    # Each worker's random channel prefix picks its shard: all four on one shard is a
    # 1 in 8 chance, so ten tries all miss with a chance of about 1e-9.
    for _ in range(10):  # until the workers' channels landed on both shards
        name = f"shards-{uuid.uuid4().hex[:10]}"
        clients = await faults.clients_on_distinct_workers(sharded_stack, name)
        found = shards_of_members(sharded_stack, room_group_name(name))
        if set(found["members"].values()) == {0, 1}:
            break
        for client in clients:
            await client.close()
        sharded_stack.restart_service("django")  # new workers, new random prefixes
    else:
        raise AssertionError("10 restarts never put channels on both shards")
    assert found["hosts"] == 2
    assert len(found["members"]) == len(clients)
    # The same message through each shard's channels, sent from either side.
    for sender in (clients[0], clients[-1]):
        others = [client for client in clients if client is not sender]
        await faults.everyone_hears(sender, others, f"from {sender.nickname}")
    for client in clients:
        await client.close()
    fresh = ChatClient(sharded_stack.http_url, name, "late")
    assert len((await fresh.connect())["messages"]) == 2
    await fresh.close()
