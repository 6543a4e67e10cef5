"""Tickets: how a client without the site's session cookie (a script, a mobile app) opens
a socket as a signed-in user. An authenticated HTTP request asks for one (views.py:
POST /api/tickets); the socket presents it as ?ticket=... once, within
settings.REALTIME_TICKET_MAX_AGE seconds. Signed with Django's signing (SECRET_KEY), so
only this site can issue one; spent tickets are rows in the database, so a ticket opens
one socket on whichever worker or replica it reaches first. TicketAuthMiddleware, beside
Channels' AuthMiddlewareStack (channels_tutorial/asgi.py), makes it the socket's user.
"""

import datetime
import json
import secrets
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core import signing
from django.db import IntegrityError, transaction
from django.utils import timezone

from . import metrics
from .models import SpentTicket

SALT = "realtime.tickets"
TICKET_MAX_AGE = 30

# Close codes a refused ticket gets (4000-4999 are the application's own).
CLOSE_TICKET_INVALID = 4410
CLOSE_TICKET_EXPIRED = 4411
CLOSE_TICKET_USED = 4412


class TicketRefused(Exception):
    reason = "ticket_invalid"
    code = CLOSE_TICKET_INVALID


class TicketInvalid(TicketRefused):
    """Not signed by this site (forged, altered, truncated), or its user is gone."""


class TicketExpired(TicketRefused):
    reason = "ticket_expired"
    code = CLOSE_TICKET_EXPIRED


class TicketUsed(TicketRefused):
    reason = "ticket_used"
    code = CLOSE_TICKET_USED


def ticket_max_age() -> int:
    return getattr(settings, "REALTIME_TICKET_MAX_AGE", TICKET_MAX_AGE)


def ticket_issue(user) -> str:
    return signing.dumps({"user": user.pk, "nonce": secrets.token_urlsafe(16)}, salt=SALT)


def ticket_redeem(ticket: str):
    """The active user `ticket` was issued to; raises TicketRefused otherwise."""
    max_age = ticket_max_age()
    try:
        claims = signing.loads(ticket, salt=SALT, max_age=max_age)
    except signing.SignatureExpired:
        raise TicketExpired("ticket expired: ask for a new one") from None
    except signing.BadSignature:
        raise TicketInvalid("ticket invalid") from None
    now = timezone.now()
    try:
        with transaction.atomic():
            SpentTicket.objects.filter(expires_at__lt=now).delete()
            SpentTicket.objects.create(
                nonce=claims["nonce"], expires_at=now + datetime.timedelta(seconds=max_age)
            )
    except IntegrityError:
        raise TicketUsed("ticket already used: ask for a new one") from None
    user = get_user_model().objects.filter(pk=claims["user"], is_active=True).first()
    if user is None:
        raise TicketInvalid("ticket invalid: its user is gone")
    return user


aticket_redeem = database_sync_to_async(ticket_redeem)


class TicketAuthMiddleware:
    """Channels middleware: a socket that presents ?ticket= is that ticket's user
    (scope["user"], over the session's). A ticket forged, expired or used turns the
    handshake down with its close code (4410-4412), accepted first so that the client
    reads why in an error frame. Other sockets pass as they came."""

    def __init__(self, inner):
        self.inner = inner

    async def __call__(self, scope, receive, send):
        ticket = _ticket(scope) if scope["type"] == "websocket" else None
        if ticket is None:
            return await self.inner(scope, receive, send)
        try:
            user = await aticket_redeem(ticket)
        except TicketRefused as refused:
            return await _refuse(refused, receive, send)
        return await self.inner({**scope, "user": user}, receive, send)


def _ticket(scope) -> str | None:
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    return query["ticket"][0] if "ticket" in query else None


async def _refuse(refused: TicketRefused, receive, send) -> None:
    await receive()  # websocket.connect
    if metrics.enabled():  # refused before routing: no route is known yet
        metrics.HANDSHAKES_REFUSED.labels("", refused.reason).inc()
    await send({"type": "websocket.accept"})
    detail = json.dumps({"type": "error", "detail": str(refused)})
    await send({"type": "websocket.send", "text": detail})
    await send({"type": "websocket.close", "code": refused.code})
