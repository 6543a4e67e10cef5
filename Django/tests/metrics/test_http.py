"""django-prometheus's middleware as the stack runs it (metrics/http.py)."""

import pytest

pytestmark = pytest.mark.django_db(transaction=True)


async def test_prometheus_middleware_counts_on_the_event_loop(async_client, monkeypatch):
    # As Django's MiddlewareMixin, django-prometheus's hooks would each run in the sync
    # thread: five or so hops a request (metrics/http.py).
    import threading

    from prometheus_client import REGISTRY

    from metrics import tally
    from metrics.http import _TalliedAfter

    threads = set()
    original = _TalliedAfter.process_response

    def recording(self, request, response):
        threads.add(threading.current_thread())
        return original(self, request, response)

    monkeypatch.setattr(_TalliedAfter, "process_response", recording)
    name = "django_http_responses_total_by_status_view_method_total"
    labels = {"status": "200", "view": "core:api-ping", "method": "GET"}
    tally.flush()
    before = REGISTRY.get_sample_value(name, labels) or 0
    assert (await async_client.get("/api/ping")).status_code == 200
    tally.flush()  # tallied in the worker, added once a second
    assert REGISTRY.get_sample_value(name, labels) == before + 1
    assert threads == {threading.current_thread()}
