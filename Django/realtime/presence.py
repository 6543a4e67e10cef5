"""Who is connected to a group: the same answer on every worker and replica.

Each socket in a group is an entry of one Redis sorted set per group (on the shard that
holds the group), scored with the time the entry expires. Each worker refreshes its own
sockets' entries every ttl/3 seconds, in one pipelined round trip per shard whatever the
number of sockets, and takes out the entries whose time has passed: the sockets of a
killed worker or replica leave within ttl of their last refresh. Whoever takes an entry
out (the socket leaving, or a refresh finding it expired) tells the group's listeners
(the sockets that asked, in listeners_group), so each change is told once; a worker's
changes of NOTIFY_INTERVAL go as one event, with the whole summary read from Redis: a
client that missed one is right at the next.

An entry is "<channel name> <name>": the name is the user's (usernames have no spaces),
empty for a guest. Needs a Redis layer (RedisChannelLayer or FanoutChannelLayer), or the
in-memory layer in one process.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import asdict, dataclass, field

from channels.layers import InMemoryChannelLayer
from channels_redis.core import RedisChannelLayer
from django.conf import settings
from redis.exceptions import RedisError

from compat.channels_redis import connection_of, shard_of

from . import metrics
from .fanout import FanoutChannelLayer
from .frames import frame
from .layer import PerWorker

logger = logging.getLogger(__name__)

# Seconds a socket stays in presence after its worker's last refresh, unless settings say
# otherwise (REALTIME_PRESENCE_TTL): how long a killed worker's sockets still show.
PRESENCE_TTL = 15.0

# At most this many names in a summary (sorted); the counts are always whole.
LIST_LIMIT = 100
# The event a change sends to the group's listeners (a consumer's presence_changed).
EVENT_TYPE = "presence.changed"
# Changes a worker saw within this many seconds go out as one event per group: a storm
# of 500 sockets joining would otherwise send each listener 500 events.
NOTIFY_INTERVAL = 0.5


def listeners_group(group: str) -> str:
    """The group of the sockets that want `group`'s presence events."""
    return f"{group}.presence"


@dataclass(frozen=True)
class Summary:
    users: list[str]  # signed-in users present, sorted, at most LIST_LIMIT
    user_count: int  # signed-in users present (one however many sockets each has)
    guests: int  # guests' sockets
    sockets: int  # every socket present


def summarize(entries: list[str]) -> Summary:
    names = [entry.partition(" ")[2] for entry in entries]
    users = sorted({name for name in names if name})
    guests = names.count("")
    return Summary(users[:LIST_LIMIT], len(users), guests, len(names))


def event(summary: Summary, joined: list[str] = (), left: list[str] = ()) -> dict:
    """The event that tells a change: who came and went (names; "" for a guest) and the
    summary after it."""
    return {
        "type": EVENT_TYPE,
        "presence": asdict(summary),
        "joined": list(joined),
        "left": list(left),
    }


@dataclass
class _Changes:
    joined: list[str] = field(default_factory=list)
    left: list[str] = field(default_factory=list)


class Presence:
    """One worker's entries in one layer's presence sets: refreshed while it has any, and
    its changes told to each group's listeners every NOTIFY_INTERVAL."""

    store_kind = "presence"  # the sets' keys: <prefix>:<kind>:<group>

    def __init__(self, layer, ttl: float, notify_interval: float = NOTIFY_INTERVAL):
        self.layer, self.ttl, self.notify_interval = layer, ttl, notify_interval
        self.local: dict[str, set[str]] = {}  # group -> this worker's entries
        self.changes: dict[str, _Changes] = {}  # group -> not yet told
        self.task: asyncio.Task | None = None
        redis = isinstance(layer, (RedisChannelLayer, FanoutChannelLayer))
        self.store = RedisStore(layer, self.store_kind) if redis else LocalStore()

    async def enter(self, group: str, channel: str, name: str) -> None:
        entry = f"{channel} {name}"
        await self.store.enter(group, entry, time.time(), self.ttl)
        self.local.setdefault(group, set()).add(entry)
        self.changes.setdefault(group, _Changes()).joined.append(name)
        self._start()

    async def leave(self, group: str, channel: str, name: str) -> None:
        entry = self.forget(group, channel, name)
        # Not removed: a refresh took it out already (and told that).
        if await self.store.leave(group, entry):
            self.changes.setdefault(group, _Changes()).left.append(name)
            self._start()

    def forget(self, group: str, channel: str, name: str) -> str:
        """Stop refreshing a socket's entry (it expires); the entry."""
        entry = f"{channel} {name}"
        entries = self.local.get(group, set())
        entries.discard(entry)
        if not entries:
            self.local.pop(group, None)
        return entry

    async def present(self, group: str) -> Summary:
        return summarize(await self.store.present(group, time.time()))

    def _start(self) -> None:
        if self.task is None or self.task.done():
            self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        refreshed = time.monotonic()
        while self.local or self.changes:
            await asyncio.sleep(self.notify_interval)
            try:
                if self.local and time.monotonic() - refreshed >= self.ttl / 3:
                    refreshed = time.monotonic()
                    await self._refresh()
                await self._notify()
            except (RedisError, OSError) as error:
                # Redis is away: the consumers' own calls report that; try again next time.
                logger.warning("presence: %s", error)
            except Exception:
                # Never the end of the loop: without refreshes, live sockets would expire.
                logger.exception("presence: refresh or notification failed")

    async def _refresh(self) -> None:
        local = {group: list(entries) for group, entries in self.local.items()}  # a copy
        expired = await self.store.refresh(local, time.time(), self.ttl)
        for group, gone in expired.items():
            if metrics.enabled():
                metrics.PRESENCE_EXPIRED.inc(len(gone))
            names = [entry.partition(" ")[2] for entry in gone]
            self.changes.setdefault(group, _Changes()).left.extend(names)

    async def _notify(self) -> None:
        changes, self.changes = self.changes, {}
        for group, change in changes.items():
            summary = await self.present(group)
            await self.layer.group_send(
                listeners_group(group), event(summary, change.joined, change.left)
            )


# Takes an entry into a set that holds fewer than `limit` live ones, in one step, so two
# workers taking the last place at once cannot both have it.
TAKE = """
redis.call("ZREMRANGEBYSCORE", KEYS[1], "-inf", "(" .. ARGV[1])
local held = redis.call("ZSCORE", KEYS[1], ARGV[3])
if not held and redis.call("ZCARD", KEYS[1]) >= tonumber(ARGV[4]) then return 0 end
redis.call("ZADD", KEYS[1], ARGV[2], ARGV[3])
redis.call("EXPIRE", KEYS[1], ARGV[5])
return 1
"""


# The layers with a store for presence's sets: Redis's (a sorted set per group), and the
# in-memory layer's (this process).
STORED_ON = (RedisChannelLayer, FanoutChannelLayer, InMemoryChannelLayer)


def key_expiry(ttl: float) -> int:
    """Seconds a set's key outlives its last refresh: a group whose every worker is gone
    leaves no key behind."""
    return int(ttl * 2) + 1


class RedisStore:
    def __init__(self, layer: RedisChannelLayer | FanoutChannelLayer, kind: str = "presence"):
        self.layer, self.kind = layer, kind

    def key(self, group: str) -> str:
        return f"{self.layer.prefix}:{self.kind}:{group}"

    async def take(self, group: str, entry: str, now: float, ttl: float, limit: int) -> bool:
        """Enter `entry`, unless `group` holds `limit` live entries already."""
        connection = self.connection(group)
        args = (now, now + ttl, entry, limit, key_expiry(ttl))
        return bool(await connection.eval(TAKE, 1, self.key(group), *args))

    def connection(self, group: str):
        return connection_of(self.layer, shard_of(self.layer, group))

    async def enter(self, group: str, entry: str, now: float, ttl: float) -> None:
        key = self.key(group)
        async with self.connection(group).pipeline(transaction=False) as pipe:
            pipe.zadd(key, {entry: now + ttl})
            pipe.expire(key, key_expiry(ttl))
            await pipe.execute()

    async def leave(self, group: str, entry: str) -> bool:
        return bool(await self.connection(group).zrem(self.key(group), entry))

    async def present(self, group: str, now: float) -> list[str]:
        return _decoded(await self.connection(group).zrangebyscore(self.key(group), now, "+inf"))

    async def refresh(self, local: dict[str, list[str]], now: float, ttl: float) -> dict:
        """This worker's entries given a new expiry, and the expired entries of their
        groups taken out: {group: entries this call took out}, where it took some."""
        by_shard: dict[int, list[str]] = {}
        for group in local:
            by_shard.setdefault(shard_of(self.layer, group), []).append(group)
        taken = {}
        for shard, groups in by_shard.items():
            connection = connection_of(self.layer, shard)
            async with connection.pipeline(transaction=False) as pipe:
                for group in groups:
                    key = self.key(group)
                    pipe.zadd(key, dict.fromkeys(local[group], now + ttl))
                    pipe.expire(key, key_expiry(ttl))
                    pipe.zrangebyscore(key, "-inf", f"({now}")
                expired = (await pipe.execute())[2::3]
            stale = [(g, _decoded(e)) for g, e in zip(groups, expired, strict=True) if e]
            if not stale:
                continue
            async with connection.pipeline(transaction=False) as pipe:
                for group, entries in stale:
                    for entry in entries:
                        pipe.zrem(self.key(group), entry)
                removed = iter(await pipe.execute())
            for group, entries in stale:
                # Only what this call removed: another worker may have been first.
                if gone := [entry for entry in entries if next(removed)]:
                    taken[group] = gone
        return taken


class LocalStore:
    """The same in one process's memory, for the in-memory layer (tests, one worker)."""

    def __init__(self):
        self.expiry: dict[str, dict[str, float]] = {}

    async def enter(self, group: str, entry: str, now: float, ttl: float) -> None:
        self.expiry.setdefault(group, {})[entry] = now + ttl

    async def take(self, group: str, entry: str, now: float, ttl: float, limit: int) -> bool:
        expiry = self.expiry.setdefault(group, {})
        live = [e for e, t in expiry.items() if t >= now]
        if entry not in live and len(live) >= limit:
            return False
        expiry[entry] = now + ttl
        return True

    async def leave(self, group: str, entry: str) -> bool:
        return self.expiry.get(group, {}).pop(entry, None) is not None

    async def present(self, group: str, now: float) -> list[str]:
        return sorted(e for e, t in self.expiry.get(group, {}).items() if t >= now)

    async def refresh(self, local: dict[str, list[str]], now: float, ttl: float) -> dict:
        taken = {}
        for group, entries in local.items():
            expiry = self.expiry.setdefault(group, {})
            expiry.update(dict.fromkeys(entries, now + ttl))
            if gone := [e for e, t in expiry.items() if t < now]:
                for entry in gone:
                    del expiry[entry]
                taken[group] = gone
        return taken


def _decoded(entries: list) -> list[str]:
    return [e.decode() if isinstance(e, bytes) else e for e in entries]


_trackers = PerWorker(Presence)


def presence_for(layer, ttl: float) -> Presence | None:
    """This worker's presence for `layer`, or None where the layer has no store for it
    (RedisPubSubChannelLayer)."""
    if not isinstance(layer, STORED_ON):
        return None
    return _trackers.get(layer, ttl)


class PresenceMixin:
    """A JsonConsumer's sockets listed in the presence of each group they join, on every
    worker and replica, unless settings.REALTIME_PRESENCE is off.

    Hooks: ``presence_name()`` is what the others see (the username, "" for a guest);
    ``wants_presence()`` says whether this socket gets each change (by default, when it
    connected with ``?presence=1``), as ``{"type": "presence", "users", "user_count",
    "guests", "sockets", "joined", "left"}``, within half a second, its own arrival first.
    """

    async def __call__(self, scope, receive, send):
        self.present_in: list[str] = []  # groups whose presence lists this socket
        await super().__call__(scope, receive, send)

    def presence_name(self) -> str:
        user = getattr(self, "user", None)
        return user.get_username() if user is not None and user.is_authenticated else ""

    def wants_presence(self) -> bool:
        return self.query.get("presence", [""])[-1] == "1"

    @frame
    def presence_changed(event):
        return {
            "type": "presence",
            **event["presence"],
            "joined": event["joined"],
            "left": event["left"],
        }

    def _presence(self) -> Presence | None:
        if not getattr(settings, "REALTIME_PRESENCE", True):
            return None
        ttl = getattr(settings, "REALTIME_PRESENCE_TTL", PRESENCE_TTL)
        return presence_for(self.channel_layer.layer, ttl)

    async def joined_group(self, group: str) -> None:
        await super().joined_group(group)
        if (presence := self._presence()) is None:
            return
        if self.wants_presence():  # first: its own arrival is the first event it gets
            await self.channel_layer.group_add(listeners_group(group), self.channel_name)
        self.present_in.append(group)
        self.route_metrics.present.inc()
        with self.channel_layer.failing("presence_enter"):
            await presence.enter(group, self.channel_name, self.presence_name())

    async def leaving(self, group: str) -> None:
        if group in self.present_in and (presence := self._presence()) is not None:
            self.present_in.remove(group)
            self.route_metrics.present.dec()
            with self.channel_layer.failing("presence_leave"):
                await presence.leave(group, self.channel_name, self.presence_name())
            if self.wants_presence():
                await self.channel_layer.group_discard(listeners_group(group), self.channel_name)
        await super().leaving(group)

    def ended(self) -> None:
        """A socket that ended without leaving (its layer lost): this worker stops
        refreshing its entries, which expire."""
        if self.present_in and (presence := self._presence()) is not None:
            for group in self.present_in:
                presence.forget(group, self.channel_name, self.presence_name())
                self.route_metrics.present.dec()
        self.present_in = []
        super().ended()
