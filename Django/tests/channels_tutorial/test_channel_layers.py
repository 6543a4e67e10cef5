import asyncio
import contextlib

import pytest

from channels_tutorial.channel_layers import RedisChannelLayer


async def test_a_cancelled_receive_does_not_block_in_redis_again():
    # Nothing listens on port 1: reaching Redis would be a ConnectionError instead.
    layer = RedisChannelLayer(hosts=[{"address": "redis://127.0.0.1:1/0"}])

    async def receive():
        # Lost, as it now and then is inside BZPOPMIN.
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(10)
        await layer._brpop_with_clean(0, "asgi:specific.test!", timeout=1)

    task = asyncio.create_task(receive())
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_an_uncancelled_receive_still_reaches_redis():
    layer = RedisChannelLayer(hosts=[{"address": "redis://127.0.0.1:1/0"}])
    with pytest.raises(Exception, match="Connect|connect"):
        await layer._brpop_with_clean(0, "asgi:specific.test!", timeout=1)
