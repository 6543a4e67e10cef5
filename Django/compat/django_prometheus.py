"""django-prometheus: its after-middleware's two counting methods, each value read once.

Copies of PrometheusAfterMiddleware.process_request and process_response that move the
same metrics by the same amounts (tests/compat/test_django_prometheus.py holds them to
the originals) at a fraction of the cost per request. They use its private helpers
(_method, _transport, _get_view_name). Upstream: no issue filed yet; remove this module
once the originals read request.META and find each value once, and let metrics.http
subclass django-prometheus's middleware directly.
"""

from django_prometheus import middleware as prometheus_middleware
from django_prometheus.utils import Time, TimeSince

# The version this module was written against and tested with (tests/compat).
UPSTREAM = ("django-prometheus", "2.5.0")

_ABSENT = object()  # getattr's default where None is a value


class PrometheusAfterMiddleware(prometheus_middleware.PrometheusAfterMiddleware):
    """django-prometheus's, with the two methods below."""

    def process_request(self, request):
        # Reads its two headers from request.META: the original's request.headers
        # builds a dict of every header first, which was most of its cost per request.
        method = self._method(request)
        self.label_metric(self.metrics.requests_by_method, request, method=method).inc()
        transport = self._transport(request)
        self.label_metric(self.metrics.requests_by_transport, request, transport=transport).inc()
        if request.META.get("HTTP_X_REQUESTED_WITH") == "XMLHttpRequest":
            self.label_metric(self.metrics.requests_ajax, request).inc()
        content_length = int(request.META.get("CONTENT_LENGTH") or 0)
        self.label_metric(self.metrics.requests_body_bytes, request).observe(content_length)
        request.prometheus_after_middleware_event = Time()

    def process_response(self, request, response):
        # Each value found once: the original asks twice for the view's name, the
        # response's charset (a regex over Content-Type) and its content.
        metrics, method = self.metrics, self._method(request)
        name, status = self._get_view_name(request), str(response.status_code)
        label = self.label_metric
        label(metrics.responses_by_status, request, response, status=status).inc()
        label(
            metrics.responses_by_status_view_method,
            request,
            response,
            status=status,
            view=name,
            method=method,
        ).inc()
        charset = getattr(response, "charset", _ABSENT)
        if charset is not _ABSENT:
            label(metrics.responses_by_charset, request, response, charset=str(charset)).inc()
        if getattr(response, "streaming", False):
            label(metrics.responses_streaming, request, response).inc()
        content = getattr(response, "content", _ABSENT)
        if content is not _ABSENT:
            label(metrics.responses_body_bytes, request, response).observe(len(content))
        if hasattr(request, "prometheus_after_middleware_event"):
            label(
                metrics.requests_latency_by_view_method,
                request,
                response,
                view=name,
                method=request.method,
            ).observe(TimeSince(request.prometheus_after_middleware_event))
        else:
            label(metrics.requests_unknown_latency, request, response).inc()
        return response
