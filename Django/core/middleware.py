from asgiref.sync import markcoroutinefunction

from . import views

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
