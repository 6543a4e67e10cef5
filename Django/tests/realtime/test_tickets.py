import pytest
from django.contrib.auth.models import User
from django.core import signing

from realtime import tickets
from realtime.models import SpentTicket
from realtime.tickets import TicketExpired, TicketInvalid, TicketUsed, ticket_issue, ticket_redeem

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
