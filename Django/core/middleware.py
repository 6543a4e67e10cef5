from asgiref.sync import markcoroutinefunction
from django_prometheus import middleware as prometheus_middleware
from django_prometheus.utils import Time, TimeSince

from realtime import metrics

from . import views

_ABSENT = object()  # getattr's default where None is a value
PROBES = {"/healthz": views.healthz, "/readyz": views.readyz, "/metrics": views.metrics}


class HealthProbeMiddleware:
    """Answers /healthz, /readyz and /metrics before any other middleware: container health
    checks use Host 127.0.0.1 and Prometheus the container's address, over plain HTTP,
    which production's ALLOWED_HOSTS and HTTPS redirect would otherwise refuse."""

    async_capable = True
    sync_capable = False

    def __init__(self, get_response):
        self.get_response = get_response
        markcoroutinefunction(self)

    async def __call__(self, request):
        probe = PROBES.get(request.path_info)
        if probe is not None:
            return await probe(request)
        return await self.get_response(request)


class TalliedMetrics(prometheus_middleware.Metrics):
    """django-prometheus's HTTP metrics (its documented override point), counted in the
    worker and added once a second (realtime.metrics.Tally): about twenty updates a
    request, each a lock, a getpid() and a file write in multiprocess mode."""

    _instance = None  # this class's own, not the base class's

    def register_metric(self, metric_cls, name, documentation, labelnames=(), **kwargs):
        return Tallied(
            super().register_metric(metric_cls, name, documentation, labelnames, **kwargs)
        )


class Tallied:
    """A metric whose counter and histogram children tally (labels looked up once)."""

    def __init__(self, metric):
        self.metric = metric
        self.children = {}

    def labels(self, *values, **labels):
        key = values or tuple(labels.items())
        child = self.children.get(key)
        if child is None:
            labelled = self.metric.labels(*values, **labels) if key else self.metric
            child = self.children[key] = metrics.tally(labelled)
        return child

    def __getattr__(self, name):
        return getattr(self.metric, name)

    def inc(self, amount=1):
        self.labels().inc(amount)

    def observe(self, amount):
        self.labels().observe(amount)


class _TalliedAfter(prometheus_middleware.PrometheusAfterMiddleware):
    metrics_cls = TalliedMetrics

    def process_request(self, request):
        # django-prometheus 2.5's, reading its two headers from request.META: its
        # request.headers builds a dict of every header first, which was most of its
        # cost per request. tests/core/test_middleware.py holds both methods here to
        # the originals.
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
        # django-prometheus 2.5's, each value found once: it asks twice for the view's
        # name, the response's charset (a regex over Content-Type) and its content.
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


class PrometheusAfterMiddleware:
    """django-prometheus's middleware, its hooks called on the event loop. As Django's
    MiddlewareMixin, each of its hooks (process_request, _view, _response, ...) would hop
    to the sync thread and back, five or so hops a request that cost a tenth of a small
    view's throughput (`make bench-metrics`); the hooks only count, so nothing blocks."""

    async_capable = True
    sync_capable = False

    def __init__(self, get_response):
        self.get_response = get_response
        self.counting = _TalliedAfter(get_response)
        markcoroutinefunction(self)

    async def __call__(self, request):
        response = self.counting.process_request(request)
        response = response or await self.get_response(request)
        return self.counting.process_response(request, response)

    async def process_view(self, request, view, args, kwargs):
        return self.counting.process_view(request, view, args, kwargs)

    async def process_template_response(self, request, response):
        return self.counting.process_template_response(request, response)

    async def process_exception(self, request, exception):
        return self.counting.process_exception(request, exception)
