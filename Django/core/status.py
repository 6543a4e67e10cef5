"""What the landing page and /api/status report about the stack that served a request."""

import os
import socket
from importlib.metadata import version

from . import checks

PACKAGES = ["django", "channels", "channels-redis", "gunicorn", "uvicorn", "uvicorn-worker"]


def request_path(request) -> dict:
    """How the request reached Django: nginx sets X-Forwarded-*, a direct client does not."""
    meta = request.META
    return {
        "via_nginx": "HTTP_X_FORWARDED_FOR" in meta,
        "client": meta.get("REMOTE_ADDR", ""),
        "forwarded_for": meta.get("HTTP_X_FORWARDED_FOR", ""),
        "forwarded_proto": meta.get("HTTP_X_FORWARDED_PROTO", ""),
        "host": meta.get("HTTP_HOST", ""),
        "scheme": request.scheme,
    }


async def stack_status(request) -> dict:
    results = await checks.readiness()
    return {
        "ok": all(result.ok for result in results.values()),
        "server": socket.gethostname(),
        "worker_pid": os.getpid(),
        "request": request_path(request),
        "versions": {name: version(name) for name in PACKAGES},
        "checks": checks.as_dict(results),
    }
