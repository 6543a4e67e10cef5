import pytest
from django.contrib.auth.models import User
from django.test import Client
from prometheus_client import REGISTRY

pytestmark = pytest.mark.django_db

PASSWORD = "a long passphrase 7"


def test_sign_up_makes_the_user_and_signs_them_in():
    client = Client()
    response = client.post(
        "/accounts/signup/",
        {"username": "ann", "password1": PASSWORD, "password2": PASSWORD, "next": "/talk/x/"},
    )
    assert response.status_code == 302 and response["Location"] == "/talk/x/"
    assert User.objects.get(username="ann").check_password(PASSWORD)
    assert "ann" in client.get("/talk/").content.decode()


def test_sign_up_with_a_bad_form_keeps_nothing_and_says_why():
    response = Client().post(
        "/accounts/signup/", {"username": "ann", "password1": PASSWORD, "password2": "other"}
    )
    assert response.status_code == 400
    assert "password fields didn" in response.content.decode()
    assert not User.objects.exists()


def test_sign_up_goes_nowhere_off_site():
    response = Client().post(
        "/accounts/signup/",
        {"username": "ann", "password1": PASSWORD, "password2": PASSWORD},
        QUERY_STRING="next=https://evil.example/",
    )
    assert response["Location"] == "/talk/"


def test_sign_in_and_out():
    User.objects.create_user("ann", password=PASSWORD)
    client = Client()
    assert client.get("/accounts/login/").status_code == 200
    response = client.post("/accounts/login/", {"username": "ann", "password": PASSWORD})
    assert response.status_code == 302 and response["Location"] == "/talk/"
    assert client.get("/talk/").context["user"].username == "ann"
    assert client.post("/accounts/logout/").status_code == 302
    assert not client.get("/talk/").context["user"].is_authenticated


def test_sign_ins_and_refusals_are_counted():
    def count(name):
        return REGISTRY.get_sample_value(name) or 0.0

    User.objects.create_user("ann", password=PASSWORD)
    before = count("accounts_logins_total"), count("accounts_login_failures_total")
    client = Client()
    client.post("/accounts/login/", {"username": "ann", "password": "wrong"})
    client.post("/accounts/login/", {"username": "ann", "password": PASSWORD})
    assert count("accounts_logins_total") == before[0] + 1
    assert count("accounts_login_failures_total") == before[1] + 1
