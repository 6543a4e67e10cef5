import pytest
from django.test import AsyncClient

pytestmark = pytest.mark.django_db(transaction=True)


async def test_healthz_answers_without_dependencies():
    response = await AsyncClient().get("/healthz")
    assert response.status_code == 200 and response.json()["status"] == "ok"


async def test_readyz_reports_each_check():
    response = await AsyncClient().get("/readyz")
    body = response.json()
    assert response.status_code == 200, body
    assert body["checks"]["database"]["detail"]["pending_migrations"] == 0
    assert body["checks"]["channel_layer"]["detail"]["backend"].endswith("InMemoryChannelLayer")


async def test_readyz_names_the_failing_part(settings):
    # A Redis nobody listens on: the layer check fails, the database check does not.
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": ["redis://127.0.0.1:9/0"]},
        }
    }
    from channels.layers import channel_layers

    channel_layers.backends.clear()
    try:
        response = await AsyncClient().get("/readyz")
    finally:
        channel_layers.backends.clear()
    assert response.status_code == 503
    body = response.json()
    assert body["failing"] == ["channel_layer"]
    assert body["checks"]["channel_layer"]["error"]


async def test_api_status_reports_how_the_request_came():
    direct = (await AsyncClient().get("/api/status")).json()
    proxied = (
        await AsyncClient().get("/api/status", headers={"X-Forwarded-For": "10.0.0.1"})
    ).json()
    assert direct["request"]["via_nginx"] is False
    assert proxied["request"]["via_nginx"] is True
    assert set(direct["versions"]) >= {"django", "channels", "channels-redis"}


async def test_without_debug_endpoints_probes_show_no_internals_and_the_rest_is_gone(settings):
    settings.DEBUG_ENDPOINTS = False
    client = AsyncClient()
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    assert (await client.get("/readyz")).json() == {"status": "ok", "failing": []}
    for path in ("/api/status", "/api/ping", "/debug/slow"):
        assert (await client.get(path)).status_code == 404, path
    page = (await client.get("/")).content.decode()
    assert "/talk/lobby/" in page and "initial-status" not in page
