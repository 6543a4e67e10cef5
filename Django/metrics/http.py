"""django-prometheus's HTTP metrics, counted on the event loop and tallied."""

from asgiref.sync import markcoroutinefunction
from django_prometheus import middleware as prometheus_middleware

from compat.django_prometheus import PrometheusAfterMiddleware as CountingMiddleware

from .tally import tally


class TalliedMetrics(prometheus_middleware.Metrics):
    """django-prometheus's HTTP metrics (its documented override point), counted in the
    worker and added once a second (metrics.tally): about twenty updates a
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
            child = self.children[key] = tally(labelled)
        return child

    def __getattr__(self, name):
        return getattr(self.metric, name)

    def inc(self, amount=1):
        self.labels().inc(amount)

    def observe(self, amount):
        self.labels().observe(amount)


class _TalliedAfter(CountingMiddleware):
    metrics_cls = TalliedMetrics


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
