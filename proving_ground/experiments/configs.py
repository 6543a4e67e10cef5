"""The stack's configurations the experiments compare (ours, the book's, daphne, a bare
ASGI app), each started as a native stack."""

from proving_ground.stacks.compose import ROOT
from proving_ground.stacks.native import NativeStack, entrypoint_serving

# Every configuration gets the same flood limit, far above what the load sends.
# DEBUG is off in every benchmark; the echo socket and /api/ping stay on (DEBUG_ENDPOINTS).
BENCH_ENV = {
    "WS_RATE_LIMIT": "100000",
    "WS_RATE_BURST": "100000",
    "DEBUG_ENDPOINTS": "1",
    "PYTHONPATH": str(ROOT),  # for the apps of proving_ground/ that some configurations serve
}
# Channels' stock dispatch: a DB-cleanup thread hop before every event (stock_dispatch.py).
STOCK_DISPATCH = entrypoint_serving("proving_ground.experiments.stock_dispatch:application")
DAPHNE = [
    "sh",
    "-c",
    "python manage.py migrate --noinput && python manage.py collectstatic --noinput -v 0"
    ' && exec daphne -b 0.0.0.0 -p "$DJANGO_PORT" channels_tutorial.asgi:application',
]
CONFIGS = {
    # Ours: the stack as shipped (docker-compose.yml, Django/.env.django).
    "ours": {},
    # The book's: the deprecated uvicorn.workers.UvicornWorker; its chapter shows no
    # worker count, so Gunicorn's default of 1; and Channels' stock consumer dispatch
    # (a DB-cleanup thread hop before every event, see realtime.consumers).
    "book": {
        "GUNICORN_CMD_ARGS": "--worker-class uvicorn.workers.UvicornWorker --workers 1",
        "command": STOCK_DISPATCH,
    },
    # The book's set-up at our worker count (WEB_CONCURRENCY, as ours), so that ours vs
    # the book's splits into what the workers buy and what the rest of ours does.
    "book, our workers": {
        "GUNICORN_CMD_ARGS": "--worker-class uvicorn.workers.UvicornWorker",
        "command": STOCK_DISPATCH,
    },
    # daphne, Channels' own server, one process.
    "daphne": {"command": DAPHNE},
}


def start_stack(config: str, layer: str = "core", env: dict | None = None) -> NativeStack:
    """The stack for `config` (with `env` on top), to start with `with`."""
    settings, env = dict(CONFIGS[config]), dict(env or {})
    command = env.pop("command", settings.pop("command", None))
    env = {**BENCH_ENV, **settings, "CHANNEL_LAYER": layer, "DEBUG": "0", **env}
    return NativeStack(django_env=env, django_command=command)


def bare_stack() -> NativeStack:
    """The same Gunicorn settings serving proving_ground/experiments/bench_app.py (no Django)."""
    command = [
        "sh",
        "-c",
        "exec gunicorn --config gunicorn.conf.py proving_ground.experiments.bench_app:app",
    ]
    env = {**BENCH_ENV, "DEBUG": "0", "PYTHONPATH": str(ROOT)}
    stack = NativeStack(django_env=env, django_command=command)
    stack.start(("mysql", "redis", "django"))
    return stack
