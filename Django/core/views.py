import asyncio
import os

from django.http import JsonResponse
from django.shortcuts import render

from . import checks, status


async def healthz(request):
    """Liveness: the worker process answers. Touches no dependency."""
    return JsonResponse({"status": "ok", "pid": os.getpid()})


async def readyz(request):
    """Readiness: MySQL answers with migrations applied and Redis carries a message."""
    results = await checks.readiness()
    failing = [name for name, result in results.items() if not result.ok]
    body = {"status": "fail" if failing else "ok", "failing": failing, "pid": os.getpid()}
    body["checks"] = checks.as_dict(results)
    return JsonResponse(body, status=503 if failing else 200)


async def ping(request):
    """The smallest JSON view through the whole middleware stack (benchmarks' baseline)."""
    return JsonResponse({"pong": True, "pid": os.getpid()})


async def index(request):
    """The landing page: every hop of the stack, checked live (see static/core/status.js)."""
    body = await status.stack_status(request)
    return render(request, "core/index.html", {"status": body})


async def api_status(request):
    """Every hop of the stack as JSON, for scripts and the landing page."""
    body = await status.stack_status(request)
    return JsonResponse(body, status=200 if body["ok"] else 503)


async def slow(request):
    """DEBUG only: a request that takes `seconds` (at most 10), to watch a graceful
    shutdown finish in-flight requests (Gunicorn's graceful_timeout)."""
    seconds = min(max(float(request.GET.get("seconds", "1")), 0.0), 10.0)
    await asyncio.sleep(seconds)
    return JsonResponse({"slept": seconds, "pid": os.getpid()})
