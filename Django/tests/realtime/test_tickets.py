import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import User
from django.core import signing
from prometheus_client import REGISTRY

from realtime import tickets
from realtime.models import SpentTicket
from realtime.tickets import (
    TicketAuthMiddleware,
    TicketExpired,
    TicketInvalid,
    TicketUsed,
    ticket_issue,
    ticket_redeem,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def ann():
    return User.objects.create_user("ann", password="a long passphrase")


def test_a_ticket_opens_once_for_its_user(ann):
    ticket = ticket_issue(ann)
    assert ticket_redeem(ticket) == ann
    with pytest.raises(TicketUsed):
        ticket_redeem(ticket)


def test_each_ticket_is_its_own(ann):
    first, second = ticket_issue(ann), ticket_issue(ann)
    assert first != second
    assert ticket_redeem(first) == ticket_redeem(second) == ann


def test_an_expired_ticket_is_refused(ann, monkeypatch, settings):
    settings.REALTIME_TICKET_MAX_AGE = 30
    ticket = ticket_issue(ann)
    later = signing.time.time() + 31
    monkeypatch.setattr(signing.time, "time", lambda: later)
    with pytest.raises(TicketExpired):
        ticket_redeem(ticket)


@pytest.mark.parametrize(
    "forge",
    [
        lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"),  # the signature altered
        lambda t: signing.dumps({"user": 1, "nonce": "x"}, salt="another.salt"),
        lambda t: signing.dumps({"user": 1, "nonce": "x"}, salt=tickets.SALT, key="not ours"),
        lambda t: "",
        lambda t: "not-a-ticket",
    ],
)
def test_a_ticket_this_site_did_not_sign_is_refused(ann, forge):
    with pytest.raises(TicketInvalid):
        ticket_redeem(forge(ticket_issue(ann)))
    assert not SpentTicket.objects.exists()


def test_a_ticket_of_a_deactivated_user_is_refused(ann):
    ticket = ticket_issue(ann)
    ann.is_active = False
    ann.save()
    with pytest.raises(TicketInvalid):
        ticket_redeem(ticket)


def test_spent_tickets_are_kept_only_until_they_would_have_expired(ann, monkeypatch):
    ticket_redeem(ticket_issue(ann))
    later = signing.time.time() + tickets.ticket_max_age() + 1
    fresh = ticket_issue(ann)
    monkeypatch.setattr(signing.time, "time", lambda: later)
    SpentTicket.objects.update(expires_at="2000-01-01T00:00:00Z")
    with pytest.raises(TicketExpired):
        ticket_redeem(fresh)
    monkeypatch.undo()
    ticket_redeem(ticket_issue(ann))
    assert SpentTicket.objects.count() == 1


@pytest.mark.django_db(transaction=True)
async def test_the_middleware_makes_the_tickets_user_the_sockets(ann):
    seen = []

    async def inner(scope, receive, send):
        seen.append(scope["user"])
        await receive()
        await send({"type": "websocket.close"})

    ticket = await database_sync_to_async(ticket_issue)(ann)
    comm = WebsocketCommunicator(TicketAuthMiddleware(inner), f"/ws/x/?ticket={ticket}")
    await comm.connect()
    assert seen == [ann]
    assert await database_sync_to_async(SpentTicket.objects.count)() == 1


@pytest.mark.django_db(transaction=True)
async def test_the_middleware_turns_a_forged_ticket_down_and_counts_it():
    async def inner(scope, receive, send):
        raise AssertionError("a refused ticket reaches no consumer")

    def refused() -> float:
        labels = {"route": "", "reason": "ticket_invalid"}
        return REGISTRY.get_sample_value("realtime_handshakes_refused_total", labels) or 0.0

    before = refused()
    comm = WebsocketCommunicator(TicketAuthMiddleware(inner), "/ws/x/?ticket=forged")
    assert (await comm.connect())[0]  # accepted, so that the client reads why
    assert await comm.receive_json_from() == {"type": "error", "detail": "ticket invalid"}
    assert (await comm.receive_output())["code"] == tickets.CLOSE_TICKET_INVALID
    assert refused() == before + 1
