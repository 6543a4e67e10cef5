"""A small realtime base for Channels consumers, to copy into your own project.

consumers.JsonConsumer: JSON frames dispatched to ``on_<type>`` methods, error frames for
bad input, a per-socket rate limit, group membership that can be watched, and a clean close
when the channel layer is lost. compat.py: every workaround of a library's internals.
"""
