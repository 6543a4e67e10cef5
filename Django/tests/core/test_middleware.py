import pytest
from django.test import AsyncClient

pytestmark = pytest.mark.django_db(transaction=True)


async def test_probes_answer_any_host_even_with_https_redirect(settings):
    settings.ALLOWED_HOSTS = ["chat.example.com"]
    settings.SECURE_SSL_REDIRECT = True
    client = AsyncClient(headers={"host": "127.0.0.1"})
    assert (await client.get("/healthz")).status_code == 200
    assert (await client.get("/readyz")).status_code == 200
    assert (await client.get("/")).status_code == 400  # everything else is still guarded
