"""The stack's ASGI app with Channels' stock dispatch in every consumer: the per-event
database clean-up (event_db_cleanup) that the shipped consumers turn off. Served by the
benchmarks' "book" configuration and the tune sweep's variant; nothing in Django/ imports
it."""

from channels_tutorial.asgi import application
from realtime.echo import EchoConsumer
from talk.consumers import TalkConsumer

for consumer in (TalkConsumer, EchoConsumer):
    consumer.event_db_cleanup = True

__all__ = ["application"]
