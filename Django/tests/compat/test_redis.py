"""compat.redis reaches into redis-py's pool. What it mends is shown against real Redis
in ../proving_ground/tests/test_channel_layers.py."""

from compat import redis


async def test_the_redis_py_pool_internals_used_are_there():
    # IdleClosingConnectionPool takes idle connections out under the pool's own lock.
    pool = redis.IdleClosingConnectionPool.from_url("redis://127.0.0.1:1/0")
    assert pool._available_connections == []
    async with pool._lock:
        pass
    await pool.close_idle()
    await pool.disconnect()
