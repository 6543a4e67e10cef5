"""channels-redis's RedisChannelLayer with one cancellation fix."""

import asyncio

from channels_redis.core import RedisChannelLayer as BaseRedisChannelLayer


class RedisChannelLayer(BaseRedisChannelLayer):
    """Stops receiving once the receiving task has been cancelled.

    Channels cancels a consumer's receive task when its socket closes. Now and then that
    cancellation never surfaces inside the blocking BZPOPMIN (channels-redis 4.3.0,
    redis-py 8.1): the call ends normally after brpop_timeout with nothing, and
    receive_single loops into another BZPOPMIN, for ever. The consumer then never
    finishes, and a worker's shutdown waits out Gunicorn's whole graceful_timeout. Each
    new blocking call first checks for a pending cancellation and raises it.
    """

    async def _brpop_with_clean(self, index, channel, timeout):
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise asyncio.CancelledError
        return await super()._brpop_with_clean(index, channel, timeout)
