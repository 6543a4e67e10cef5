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


async def test_prometheus_middleware_counts_on_the_event_loop(async_client, monkeypatch):
    # As Django's MiddlewareMixin, django-prometheus's hooks would each run in the sync
    # thread: five or so hops a request (core/middleware.py).
    import threading

    from django_prometheus.middleware import (
        PrometheusAfterMiddleware,
        PrometheusBeforeMiddleware,
    )
    from prometheus_client import REGISTRY

    from realtime import metrics

    threads = set()
    for cls in (PrometheusBeforeMiddleware, PrometheusAfterMiddleware):
        original = cls.process_response

        def recording(self, request, response, original=original):
            threads.add(threading.current_thread())
            return original(self, request, response)

        monkeypatch.setattr(cls, "process_response", recording)
    name = "django_http_responses_total_by_status_view_method_total"
    labels = {"status": "200", "view": "core:api-ping", "method": "GET"}
    metrics.flush()
    before = REGISTRY.get_sample_value(name, labels) or 0
    assert (await async_client.get("/api/ping")).status_code == 200
    metrics.flush()  # tallied in the worker, added once a second
    assert REGISTRY.get_sample_value(name, labels) == before + 1
    assert threads == {threading.current_thread()}
