"""A small realtime base for Channels consumers, to copy into your own project.

consumers.JsonConsumer: JSON frames dispatched to ``on_<type>`` methods, error frames for
bad input, refusals, groups left on disconnect, and a clean close when the channel layer
is lost; its as_asgi() wraps each socket in its metrics (metrics.CountedSocket) and rate
limit (ratelimit.RateLimited). What a consumer takes by its bases: presence.PresenceMixin
(who is in each group), streams.StreamConsumer (a stream's items in order and once,
resumed after a reconnect). tickets.TicketAuthMiddleware: sign-in for clients without
the session cookie, beside Channels' AuthMiddlewareStack. fanout.py: the stack's own
channel layer. What it needs from libraries' internals is in the project's compat/.
"""
