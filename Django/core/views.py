import asyncio
import functools
import os

from asgiref.sync import sync_to_async
from django.conf import settings
from django.http import Http404, JsonResponse
from django.shortcuts import render
from django_prometheus.exports import ExportToDjangoView

from . import checks, status


def debug_endpoint(view):
    """A view for developers only: 404 unless settings.DEBUG_ENDPOINTS (DEBUG by default)."""

    @functools.wraps(view)
    async def wrapper(request, *args, **kwargs):
        if not settings.DEBUG_ENDPOINTS:
            raise Http404
        return await view(request, *args, **kwargs)

    return wrapper


async def healthz(request):
    """Liveness: the worker process answers. Touches no dependency."""
    body = {"status": "ok"}
    if settings.DEBUG_ENDPOINTS:
        body["pid"] = os.getpid()
    return JsonResponse(body)


async def readyz(request):
    """Readiness: MySQL answers with migrations applied and Redis carries a message.
    Names the failing parts; their details (versions, errors, timings) only for developers."""
    results = await checks.readiness()
    failing = [name for name, result in results.items() if not result.ok]
    body = {"status": "fail" if failing else "ok", "failing": failing}
    if settings.DEBUG_ENDPOINTS:
        body.update(pid=os.getpid(), checks=checks.as_dict(results))
    return JsonResponse(body, status=503 if failing else 200)


async def metrics(request):
    """Prometheus' scrape: every worker's figures at once (prometheus-client's multiprocess
    mode reads each worker's files). nginx's public server never passes /metrics on."""
    if not settings.METRICS:
        raise Http404
    # Reading the files blocks: in a thread of its own, not the database thread.
    return await sync_to_async(ExportToDjangoView, thread_sensitive=False)(request)


async def index(request):
    """The landing page. For developers, every hop of the stack checked live
    (static/core/status.js); otherwise a plain page."""
    if not settings.DEBUG_ENDPOINTS:
        return render(request, "core/landing.html")
    body = await status.stack_status(request)
    return render(request, "core/index.html", {"status": body})


@debug_endpoint
async def ping(request):
    """The smallest JSON view through the whole middleware stack (benchmarks' baseline)."""
    return JsonResponse({"pong": True, "pid": os.getpid()})


@debug_endpoint
async def api_status(request):
    """Every hop of the stack as JSON, for scripts and the landing page."""
    body = await status.stack_status(request)
    return JsonResponse(body, status=200 if body["ok"] else 503)


@debug_endpoint
async def slow(request):
    """A request that takes `seconds` (at most 10), to watch a graceful shutdown finish
    in-flight requests (Gunicorn's graceful_timeout)."""
    seconds = min(max(float(request.GET.get("seconds", "1")), 0.0), 10.0)
    await asyncio.sleep(seconds)
    return JsonResponse({"slept": seconds, "pid": os.getpid()})
