"""Gunicorn: one master process managing Uvicorn workers that serve the ASGI app.

Values come from the environment (Django/.env.django) through config.ServerSettings.
"""

import os

from prometheus_client import multiprocess

from channels_tutorial.config import ServerSettings
from compat.prometheus_client import fold_dead_worker

_server = ServerSettings()

wsgi_app = "channels_tutorial.asgi:application"
# uvicorn.workers.UvicornWorker (the book's) is deprecated; the uvicorn-worker package
# replaces it. The subclass turns off the lifespan noise and sets WebSocket limits.
worker_class = "channels_tutorial.workers.UvicornWorker"
bind = f"0.0.0.0:{_server.django_port}"
workers = _server.web_concurrency
# Each worker binds its own socket (SO_REUSEPORT), so long-lived WebSockets spread evenly
# over the workers instead of piling up on the one that wakes first (REUSE_PORT). A lone
# worker keeps the master's socket: connections then wait while it restarts.
reuse_port = _server.reuse_port and _server.web_concurrency > 1
# How long workers get to finish in-flight requests after SIGTERM; Compose's
# stop_grace_period must be longer.
graceful_timeout = _server.graceful_timeout
# nginx's X-Forwarded-For/-Proto are trusted only from these addresses.
forwarded_allow_ips = _server.forwarded_allow_ips
# Restart workers when code changes, in development only.
reload = _server.debug
# Idle keep-alive connections stay open this long: longer than a proxy's upstream
# keepalive_timeout (60 s is common), so it never reuses one that Uvicorn just closed.
keepalive = 75
# Logs go to the container's stdout/stderr.
accesslog = "-"
errorlog = "-"
# Gunicorn 27's control socket sits at one fixed path per user, so two stacks on one
# machine (tests, native runs) would share it; nothing here uses it.
control_socket_disable = True


def child_exit(server, worker):
    # prometheus-client's multiprocess mode (entrypoint.sh sets PROMETHEUS_MULTIPROC_DIR):
    # a dead worker's sockets are gone, so its live gauges stop counting; its counters
    # join the archive, so the folder does not grow with every restart.
    if directory := os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.mark_process_dead(worker.pid)
        fold_dead_worker(directory, worker.pid)
