"""The sign-in throttle (django-axes, settings.AXES_*): failures counted per username and
per address; past the limit, 429 with a page and Retry-After until the lockout ends."""

import datetime
import time

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import Client
from prometheus_client import REGISTRY

pytestmark = pytest.mark.django_db

PASSWORD = "a long passphrase 7"


def sign_in(client: Client, password: str, username: str = "ann"):
    return client.post("/accounts/login/", {"username": username, "password": password})


def locked_out_total() -> float:
    return REGISTRY.get_sample_value("accounts_sign_ins_locked_out_total") or 0.0


@pytest.fixture
def ann(settings):
    settings.AXES_FAILURE_LIMIT = 3
    return User.objects.create_user("ann", password=PASSWORD)


def test_wrong_passwords_past_the_limit_lock_the_account_and_the_right_one_is_refused(ann):
    client = Client()
    before = locked_out_total()
    statuses = [sign_in(client, "wrong").status_code for _ in range(5)]
    # The third failure locks; each later try is refused without checking the password.
    assert statuses == [200, 200, 429, 429, 429]
    assert locked_out_total() == before + 3

    refused = sign_in(client, PASSWORD)
    assert refused.status_code == 429
    assert refused["Retry-After"] == "900"
    assert "Too many failed sign-ins" in refused.content.decode()
    assert "Try again in 15 minutes" in refused.content.decode()
    assert "_auth_user_id" not in client.session


def test_another_address_is_refused_for_a_locked_username(ann):
    for _ in range(3):
        sign_in(Client(), "wrong")
    assert sign_in(Client(REMOTE_ADDR="192.0.2.9"), PASSWORD).status_code == 429


def test_a_locked_address_is_refused_for_every_username(ann):
    User.objects.create_user("bob", password=PASSWORD)
    for name in ("x", "y", "z"):
        sign_in(Client(), "wrong", username=name)
    assert sign_in(Client(), PASSWORD, username="bob").status_code == 429
    assert sign_in(Client(REMOTE_ADDR="192.0.2.9"), PASSWORD, username="bob").status_code == 302


def test_an_admin_lifts_a_lockout(ann):
    for _ in range(3):
        sign_in(Client(), "wrong")
    elsewhere = Client(REMOTE_ADDR="192.0.2.9")
    call_command("axes_reset_username", "ann")
    # The guesses' address stays locked until its own reset.
    assert sign_in(Client(), PASSWORD).status_code == 429
    assert sign_in(elsewhere, PASSWORD).status_code == 302
    call_command("axes_reset_ip", "127.0.0.1")
    assert sign_in(Client(), PASSWORD).status_code == 302


def test_the_lockout_ends_by_itself(ann, settings):
    settings.AXES_COOLOFF_TIME = datetime.timedelta(seconds=1)
    for _ in range(3):
        sign_in(Client(), "wrong")
    assert sign_in(Client(), PASSWORD).status_code == 429
    time.sleep(1.2)
    assert sign_in(Client(), PASSWORD).status_code == 302


def test_the_right_password_clears_the_failures(ann):
    for _ in range(2):
        sign_in(Client(), "wrong")
    assert sign_in(Client(), PASSWORD).status_code == 302
    # Counted afresh: two more failures do not lock.
    assert [sign_in(Client(), "wrong").status_code for _ in range(2)] == [200, 200]
