"""channels-redis's core layer (4.3.0) against a real Redis: the defects that the stack's
own layer (realtime/fanout.py) does not have, and that keep CHANNEL_LAYER=core from being
the default. Each `upstream` test shows one; when one fails, upstream has fixed it:
say so in docs/channels-redis.md, whose reproductions these are. And redis-py's pool
beside compat.redis's IdleClosingConnectionPool, which the stack's layer uses."""

import asyncio
import sys
import threading
from pathlib import Path

import pytest
import redis
import redis.asyncio
from channels_redis.core import RedisChannelLayer as UpstreamLayer

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "Django"))
from compat.redis import IdleClosingConnectionPool  # noqa: E402
from realtime.fanout import FanoutChannelLayer  # noqa: E402


@pytest.fixture
def address(stack):
    return f"redis://127.0.0.1:{stack.redis_port}/15"


async def receiving(layer, channel):
    """A receive task that has entered channels-redis's receive()."""
    task = asyncio.create_task(layer.receive(channel))
    await asyncio.sleep(0.3)  # the first receiver takes the lock and blocks in BZPOPMIN
    return task


async def cancelled(task):
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 10)


async def cancel_the_lock_holder(layer_class, address) -> bool:
    """A consumer's socket closes while its receive holds the receive lock: is its
    (empty) queue still in receive_buffer?"""
    layer = layer_class(hosts=[address])
    try:
        channel = await layer.new_channel()
        await cancelled(await receiving(layer, channel))
        return channel in layer.receive_buffer
    finally:
        await layer.flush()


async def cancelled_while_receiving(layer, channel) -> None:
    await cancelled(await receiving(layer, channel))


async def cancelled_before_it_started(layer, channel) -> None:
    # As Channels does when a socket closes right after a receive returned: the next
    # receive task is cancelled before its first step, so no line of receive() runs.
    task = asyncio.ensure_future(layer.receive(channel))
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def deliver_late(layer, stop_receiving) -> tuple[str, str]:
    """Two sockets in a group; `stop_receiving` ends one's receive (its socket closed),
    then a group message arrives that names it too. Returns (alive, gone)."""
    alive, gone = await layer.new_channel(), await layer.new_channel()
    for channel in (alive, gone):
        await layer.group_add("room", channel)
    alive_task = await receiving(layer, alive)  # the lock holder: it pops for both
    await stop_receiving(layer, gone)
    await layer.group_send("room", {"type": "chat.message", "text": "late"})
    assert (await asyncio.wait_for(alive_task, 10))["text"] == "late"
    return alive, gone


async def deliver_to_a_closed_channel(layer_class, address) -> bool:
    """Does a queue for the closed channel appear, holding the late message?"""
    layer = layer_class(hosts=[address])
    try:
        _, gone = await deliver_late(layer, cancelled_while_receiving)
        return gone in layer.receive_buffer
    finally:
        await layer.flush()


async def test_upstream_keeps_the_queue_of_a_receiver_cancelled_in_bzpopmin(address):
    assert await cancel_the_lock_holder(UpstreamLayer, address)


async def test_upstream_makes_a_queue_for_a_closed_channel(address):
    assert await deliver_to_a_closed_channel(UpstreamLayer, address)


async def deliver_after_a_receive_cancelled_before_it_started(layer_class, address) -> bool:
    """Long after the layer's expiry, does the late message's queue still exist?"""
    layer = layer_class(hosts=[address], expiry=1)
    try:
        alive, gone = await deliver_late(layer, cancelled_before_it_started)
        await asyncio.sleep(layer.expiry * 2)
        await layer.send(alive, {"type": "chat.message", "text": "later"})  # a sweep's chance
        assert (await asyncio.wait_for(layer.receive(alive), 10))["text"] == "later"
        return gone in layer.receive_buffer
    finally:
        await layer.flush()


async def test_upstream_keeps_a_queue_nobody_will_read(address):
    assert await deliver_after_a_receive_cancelled_before_it_started(UpstreamLayer, address)


def send_while_this_loop_stands_still(address, channel, message) -> None:
    """Sends from another thread while this thread's event loop is blocked: the lock
    holder's BZPOPMIN reply reaches its socket, but the holder cannot read it yet."""
    sender = UpstreamLayer(hosts=[address])
    thread = threading.Thread(target=asyncio.run, args=(sender.send(channel, message),))
    thread.start()
    thread.join()


async def cancel_the_lock_holder_as_a_message_arrives(layer_class, address) -> bool:
    """A socket closes just as a message for another socket of its worker arrives, while
    its receive holds the lock: does the other socket still get the message?"""
    # As settings.py: redis-py's 5 s read timeout would race BZPOPMIN's own 5 s.
    layer = layer_class(hosts=[{"address": address, "socket_timeout": 15}])
    try:
        holder, other = await layer.new_channel(), await layer.new_channel()
        holder_task = await receiving(layer, holder)
        other_task = await receiving(layer, other)
        send_while_this_loop_stands_still(address, other, {"type": "chat.message"})
        await cancelled(holder_task)
        try:
            await asyncio.wait_for(other_task, 7)  # longer than BZPOPMIN's 5 s
        except TimeoutError:
            return False
        return True
    finally:
        await layer.flush()


async def test_upstream_loses_the_message_the_cancelled_holder_popped(address):
    assert not await cancel_the_lock_holder_as_a_message_arrives(UpstreamLayer, address)


async def connections_after_a_burst(layer, address) -> tuple[int, int]:
    """Redis clients before and after 50 concurrent commands and a quiet moment with no
    command after them (the way a worker's last socket leaves)."""
    admin = redis.Redis.from_url(address)
    try:
        before = admin.info("clients")["connected_clients"]
        layer.connection(0).connection_pool.idle_close_interval = 0.1  # a minute, made short
        message = {"type": "chat.message"}
        await asyncio.gather(*(layer.group_send("burst", message) for _ in range(50)))
        await asyncio.sleep(0.5)
        return before, admin.info("clients")["connected_clients"]
    finally:
        await layer.flush()
        admin.close()


async def test_upstream_pool_keeps_every_connection_of_a_burst(address):
    layer = UpstreamLayer(hosts=[address])
    before, after = await connections_after_a_burst(layer, address)
    assert after >= before + 20


async def test_the_stacks_layer_closes_idle_connections(address):
    layer = FanoutChannelLayer(hosts=[address])
    assert isinstance(layer.connection(0).connection_pool, IdleClosingConnectionPool)
    before, after = await connections_after_a_burst(layer, address)
    assert after <= before + 1


async def commands_while_idle_connections_close(address, close_idle) -> list[BaseException]:
    """Ten idle connections; `close_idle(pool)` starts while 50 commands take them."""
    pool = IdleClosingConnectionPool.from_url(address)
    client = redis.asyncio.Redis(connection_pool=pool)
    try:
        await asyncio.gather(*(client.ping() for _ in range(10)))
        closing = asyncio.ensure_future(close_idle(pool))
        results = await asyncio.gather(
            *(client.ping() for _ in range(50)), closing, return_exceptions=True
        )
        return [r for r in results if isinstance(r, BaseException)]
    finally:
        await pool.disconnect()


async def test_redis_py_closes_idle_connections_under_their_new_users(address):
    failures = await commands_while_idle_connections_close(
        address, lambda pool: pool.disconnect(inuse_connections=False)
    )
    assert failures, "redis-py's disconnect(inuse_connections=False) now locks the pool"


async def test_the_idle_closing_pool_closes_only_connections_nobody_took(address):
    failures = await commands_while_idle_connections_close(address, lambda pool: pool.close_idle())
    assert failures == []
