import pytest
from django.test import Client

pytestmark = pytest.mark.django_db


def test_room_page_carries_the_room_name_for_the_script():
    response = Client().get("/talk/lobby/")
    assert response.status_code == 200
    assert b'<script id="room-name" type="application/json">"lobby"</script>' in response.content
    assert b"talk/talk.js" in response.content


@pytest.mark.parametrize("room", ["UPPER", "a" * 81, "a.b", "a/b", "..", "%2e%2e"])
def test_bad_room_name_page_is_a_clear_400(room):
    response = Client().get(f"/talk/{room}/")
    assert response.status_code == 400
    assert b"room names are" in response.content


def test_room_form_redirects_to_the_room():
    response = Client().get("/talk/", {"room": " Lobby "})
    assert response.status_code == 302 and response.url == "/talk/lobby/"
    bad = Client().get("/talk/", {"room": "no spaces"})
    assert bad.status_code == 400 and b"room names are" in bad.content
