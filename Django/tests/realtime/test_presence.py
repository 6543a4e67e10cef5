import asyncio

from channels.layers import InMemoryChannelLayer

from realtime.presence import Presence, listeners_group, summarize


def test_a_summary_names_each_user_once_and_counts_guests_sockets():
    entries = ["a.1 ann", "a.2 ann", "b.1 bob", "c.1 ", "c.2 "]
    summary = summarize(entries)
    assert (summary.users, summary.user_count, summary.guests, summary.sockets) == (
        ["ann", "bob"],
        2,
        2,
        5,
    )


async def test_a_dead_workers_sockets_leave_once_its_entries_expire():
    layer = InMemoryChannelLayer()
    listener = await layer.new_channel()
    await layer.group_add(listeners_group("room"), listener)
    # Two workers sharing one store: the second stops refreshing (killed).
    alive = Presence(layer, ttl=0.6, notify_interval=0.05)
    dead = Presence(layer, ttl=0.6, notify_interval=0.05)
    dead.store = alive.store
    await alive.enter("room", "alive.1", "ann")
    await dead.enter("room", "dead.1", "bob")
    dead.task.cancel()
    dead.local.clear()
    heard = []
    async with asyncio.timeout(5):
        while not any(event["left"] for event in heard):
            heard.append(await layer.receive(listener))
    assert heard[-1]["left"] == ["bob"]
    assert heard[-1]["presence"]["users"] == ["ann"]
    assert (await alive.present("room")).users == ["ann"]
