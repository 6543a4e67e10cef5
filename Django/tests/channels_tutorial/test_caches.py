"""The sign-in throttle's cache (channels_tutorial/caches.py): Django's Redis cache on the
channel layer's first Redis, or on the primary its Sentinels name."""

from django.core.cache.backends.redis import RedisCache
from redis.retry import Retry
from redis.sentinel import SentinelConnectionPool

from channels_tutorial.caches import KEY_PREFIX, SentinelPool, redis_cache
from channels_tutorial.config import Settings

REQUIRED = {
    "secret_key": "x",
    "mysql_database": "d",
    "mysql_user": "u",
    "mysql_password": "p",
    "static_root": "/tmp",
}


def cache_of(**fields) -> RedisCache:
    entry = redis_cache(Settings(**REQUIRED, **fields).redis_hosts[0])
    return RedisCache(entry["LOCATION"], {"KEY_PREFIX": entry["KEY_PREFIX"], **entry})


def test_a_redis_url_is_the_caches_location_with_the_layers_client_options():
    cache = cache_of(redis_url="redis://cache-host:6380/2", redis_password="s3cret")
    pool = cache._cache._get_connection_pool(write=True)
    assert cache.key_prefix == KEY_PREFIX
    assert pool.connection_kwargs["host"] == "cache-host"
    assert pool.connection_kwargs["port"] == 6380 and pool.connection_kwargs["db"] == 2
    assert pool.connection_kwargs["password"] == "s3cret"
    assert pool.connection_kwargs["socket_connect_timeout"] == 2


def test_behind_sentinels_the_pool_asks_them_for_the_primary():
    cache = cache_of(redis_sentinels="s1:26379,s2:26379", redis_sentinel_master="main")
    pool = cache._cache._get_connection_pool(write=True)
    assert isinstance(pool, SentinelPool) and isinstance(pool, SentinelConnectionPool)
    assert pool.service_name == "main"
    sentinels = pool.sentinel_manager.sentinels
    assert [s.connection_pool.connection_kwargs["host"] for s in sentinels] == ["s1", "s2"]
    # redis-py's blocking client keeps its own retries, not the layer's asyncio ones.
    for sentinel in sentinels:
        assert isinstance(sentinel.connection_pool.connection_kwargs["retry"], Retry)
        assert sentinel.connection_pool.connection_kwargs["socket_timeout"] == 2
