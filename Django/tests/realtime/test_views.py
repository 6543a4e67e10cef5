import pytest
from django.contrib.auth.models import User
from django.test import Client

from realtime.tickets import ticket_redeem

pytestmark = pytest.mark.django_db


def test_a_signed_in_user_gets_a_ticket_for_themselves():
    ann = User.objects.create_user("ann", password="a long passphrase")
    client = Client()
    client.force_login(ann)
    response = client.post("/api/tickets")
    assert response.status_code == 201
    body = response.json()
    assert body["expires_in"] == 30
    assert ticket_redeem(body["ticket"]) == ann


def test_no_ticket_without_signing_in():
    response = Client().post("/api/tickets")
    assert response.status_code == 401
    assert response.json() == {"detail": "sign in first"}


def test_a_ticket_needs_a_post_with_the_csrf_token():
    client = Client(enforce_csrf_checks=True)
    client.force_login(User.objects.create_user("ann", password="a long passphrase"))
    assert client.get("/api/tickets").status_code == 405
    assert client.post("/api/tickets").status_code == 403  # no token: another site's form
