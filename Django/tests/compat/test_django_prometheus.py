"""compat.django_prometheus's copies of django-prometheus's counting methods move the
same metrics by the same amounts as the originals."""

import pytest


class _Recorder:
    """Stands for django-prometheus's Metrics: records what each metric is asked to do."""

    def __init__(self):
        self.calls = []

    def __getattr__(self, name):
        recorder = self

        class Child:
            def __init__(self, labels):
                self.labels_ = labels

            def labels(self, **labels):
                return Child(labels)

            def inc(self, amount=1):
                recorder.calls.append((name, self.labels_, "inc", amount))

            def observe(self, amount):
                recorder.calls.append((name, self.labels_, "observe", amount))

        return Child({})


@pytest.mark.parametrize(
    "method, headers, body",
    [
        ("GET", {}, b""),
        ("POST", {"X-Requested-With": "XMLHttpRequest", "X-Forwarded-Proto": "https"}, b"abc"),
        ("BREW", {"Content-Length": "0"}, b""),
    ],
)
def test_our_process_request_counts_as_django_prometheus_does(settings, method, headers, body):
    # compat.django_prometheus's copy of PrometheusAfterMiddleware.process_request only reads the
    # headers differently: it must move the same metrics by the same amounts.
    from django.test import RequestFactory
    from django_prometheus.middleware import PrometheusAfterMiddleware

    from compat.django_prometheus import PrometheusAfterMiddleware as Ours

    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    calls = []
    for cls in (PrometheusAfterMiddleware, Ours):
        middleware = cls.__new__(cls)  # without registering its metrics again
        middleware.metrics = _Recorder()
        request = RequestFactory().generic(method, "/api/ping", body, headers=headers)
        middleware.process_request(request)
        assert hasattr(request, "prometheus_after_middleware_event")
        calls.append(middleware.metrics.calls)
    assert calls[0] == calls[1]
    assert len(calls[0]) == 3 + ("X-Requested-With" in headers)


@pytest.mark.parametrize(
    "response_kind, resolved, timed",
    [
        ("json", True, True),
        ("streaming", True, True),
        ("latin-1", False, True),
        ("json", False, False),
    ],
)
def test_our_process_response_counts_as_django_prometheus_does(response_kind, resolved, timed):
    from django.http import HttpResponse, JsonResponse, StreamingHttpResponse
    from django.test import RequestFactory
    from django.urls import resolve
    from django_prometheus.middleware import PrometheusAfterMiddleware

    from compat.django_prometheus import PrometheusAfterMiddleware as Ours

    calls = []
    for cls in (PrometheusAfterMiddleware, Ours):
        middleware = cls.__new__(cls)
        middleware.metrics = _Recorder()
        request = RequestFactory().get("/api/ping")
        if resolved:
            request.resolver_match = resolve("/api/ping")
        if timed:
            request.prometheus_after_middleware_event = 0.0
        response = {
            "json": lambda: JsonResponse({"pong": True}),
            "streaming": lambda: StreamingHttpResponse(iter([b"a", b"bc"])),
            "latin-1": lambda: HttpResponse(b"x", content_type="text/plain; charset=latin-1"),
        }[response_kind]()
        assert middleware.process_response(request, response) is response
        # Latencies differ by when each ran: compare which metric and labels only.
        calls.append(
            [
                (n, labels, op, amount if "latency" not in n else None)
                for n, labels, op, amount in middleware.metrics.calls
            ]
        )
    assert calls[0] == calls[1]
