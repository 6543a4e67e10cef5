"""compat.channels' dispatch is Channels' own without the database clean-up."""

import inspect

import pytest
from channels.consumer import AsyncConsumer

from compat.channels import dispatch_without_db_cleanup


def test_channels_dispatch_is_still_the_one_copied():
    # If this changes, compare dispatch_without_db_cleanup with the new original.
    source = inspect.getsource(AsyncConsumer.dispatch)
    assert "handler = getattr(self, get_handler_name(message), None)" in source
    assert "await aclose_old_connections()" in source
    assert "await handler(message)" in source


class Consumer:
    def __init__(self):
        self.handled = []

    async def chat_message(self, message):
        self.handled.append(message)


async def test_it_calls_the_handler_named_after_the_type():
    consumer = Consumer()
    await dispatch_without_db_cleanup(consumer, {"type": "chat.message", "text": "hi"})
    assert consumer.handled == [{"type": "chat.message", "text": "hi"}]


async def test_a_type_without_a_handler_is_an_error_as_in_channels():
    with pytest.raises(ValueError, match="No handler for message type chat.nothing"):
        await dispatch_without_db_cleanup(Consumer(), {"type": "chat.nothing"})
