"""A small realtime base for Channels consumers, to copy into your own project.

consumers.JsonConsumer: JSON frames dispatched to ``on_<type>`` methods, error frames for
bad input, a per-socket rate limit, groups left on disconnect, and a clean close when the
channel layer is lost. streams.StreamConsumer: a stream's items in order and once, resumed
after a reconnect. fanout.py: the stack's own channel layer. What it needs from libraries'
internals is in the project's compat/ package.
"""
