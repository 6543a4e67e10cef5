"""Where the sign-in throttle (django-axes) keeps its counts: the channel layer's Redis,
through Django's own Redis cache, so that every worker and replica sees the same counts;
behind Sentinels, the primary they name."""

from redis.sentinel import Sentinel, SentinelConnectionPool

BACKEND = "django.core.cache.backends.redis.RedisCache"
# Keys of their own beside the channel layer's (Django's prefix:version:key).
KEY_PREFIX = "sign-in"


def redis_cache(host: dict) -> dict:
    """A CACHES entry for one of config.Settings.redis_hosts."""
    named = ("address", "sentinels", "master_name", "sentinel_kwargs")
    options = {key: value for key, value in host.items() if key not in named}
    cache = {"BACKEND": BACKEND, "KEY_PREFIX": KEY_PREFIX, "OPTIONS": options}
    if "sentinels" not in host:
        return {**cache, "LOCATION": host["address"]}
    # The Sentinels' asyncio Retry is the channel layer's; redis-py's blocking client
    # keeps its own.
    sentinel_kwargs = {k: v for k, v in host["sentinel_kwargs"].items() if k != "retry"}
    options.update(
        pool_class=SentinelPool,
        sentinels=host["sentinels"],
        master_name=host["master_name"],
        sentinel_kwargs=sentinel_kwargs,
    )
    return {**cache, "LOCATION": f"redis://{host['master_name']}"}


class SentinelPool(SentinelConnectionPool):
    """Django's Redis cache makes its pool with from_url(LOCATION, **OPTIONS): this one
    asks the Sentinels where the primary is instead of reading it from the URL."""

    @classmethod
    def from_url(cls, url, *, sentinels, master_name, sentinel_kwargs, **options):
        return cls(master_name, Sentinel(sentinels, sentinel_kwargs=sentinel_kwargs), **options)
