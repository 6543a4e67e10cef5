"""What the running app uses: MySQL (MariaDB here) with migrations, Redis as the layer."""

import subprocess
import sys

import httpx
import redis

from proving_ground import faults
from proving_ground.stacks.compose import ROOT

from .conftest import open_socket


def test_readiness_through_nginx_names_the_real_backends(stack):
    body = httpx.get(stack.http_url + "/readyz").json()
    assert body["status"] == "ok", body
    database = body["checks"]["database"]["detail"]
    assert database["vendor"] == "mysql"
    assert database["pending_migrations"] == 0
    layer = body["checks"]["channel_layer"]["detail"]
    assert layer["backend"] == LAYER_CLASSES[faults.layer_of(stack)]


# The class each CHANNEL_LAYER selects (Django/channels_tutorial/settings.py).
LAYER_CLASSES = {
    "fanout": "realtime.fanout.FanoutChannelLayer",
    "core": "channels_redis.core.RedisChannelLayer",
    "pubsub": "channels_redis.pubsub.RedisPubSubChannelLayer",
}


def manage(stack, *args: str, timeout: float = 60, **env: str) -> subprocess.CompletedProcess:
    """`python manage.py ARGS` with the django service's environment (`env` on top)."""
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT / "Django",
        env={**stack.django_env(), "PATH": "/usr/bin:/bin", **env},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_the_books_shell_check(stack):
    # The book's check: in `manage.py shell`, get_channel_layer() is a Redis layer; and
    # the Channels tutorial's, a message sent to a channel comes back from it.
    code = (
        "import channels.layers; from asgiref.sync import async_to_sync; "
        "layer = channels.layers.get_channel_layer(); print(layer); "
        "async_to_sync(layer.send)('test_channel', {'type': 'hello'}); "
        "print(async_to_sync(layer.receive)('test_channel'))"
    )
    result = manage(stack, "shell", "-c", code)
    assert result.returncode == 0, result.stderr
    # The book shows <channels_redis.core.RedisChannelLayer object at ...>; the stack's
    # own layer is the default now (README, "What changed since the book").
    assert LAYER_CLASSES[faults.layer_of(stack)].rpartition(".")[2] in result.stdout
    assert "{'type': 'hello'}" in result.stdout


def test_database_is_utf8mb4_from_my_cnf_with_migrations_applied(stack):
    connection = faults.mysql_connect(stack)
    try:
        cursor = connection.cursor()
        cursor.execute("SELECT @@character_set_database, @@collation_database")
        assert cursor.fetchone() == ("utf8mb4", "utf8mb4_unicode_ci")
        cursor.execute("SELECT COUNT(*) FROM django_migrations WHERE app = 'auth'")
        assert cursor.fetchone()[0] > 0
    finally:
        connection.close()


async def test_socket_groups_live_in_redis(stack):
    # The stack's layer: a worker's subscription to the group; the core layer: a key.
    socket, _ = await open_socket(stack)
    async with socket:
        client = redis.Redis(host="127.0.0.1", port=stack.redis_port)
        try:
            if faults.layer_of(stack) == "core":
                assert client.zcard("asgi:group:echo") >= 1
            else:
                assert client.pubsub_numsub("realtime:group:echo")[0][1] >= 1
        finally:
            client.close()


def test_wait_for_db_stops_at_once_when_mysql_refuses_the_credentials(stack):
    # A data volume made with other credentials keeps them: waiting cannot help.
    result = manage(
        stack, "wait_for_db", "--timeout", "30", timeout=20, MYSQL_PASSWORD="not-the-password"
    )
    assert result.returncode == 1
    assert "the database refuses MYSQL_USER/MYSQL_PASSWORD" in result.stderr
    assert "retrying" not in result.stderr


def test_replicas_migrate_one_at_a_time_under_a_mysql_lock(stack):
    # Another replica's session holds the lock: this one waits, then gives up with a
    # clear error; once the lock is free it migrates (entrypoint.sh runs it).
    from core.management.commands.migrate_locked import LOCK_NAME

    other = faults.mysql_connect(stack)
    try:
        cursor = other.cursor()
        cursor.execute("SELECT GET_LOCK(%s, 0)", [LOCK_NAME])
        assert cursor.fetchone() == (1,)
        waited = manage(stack, "migrate_locked", "--timeout", "1")
        assert waited.returncode == 1
        assert "another process still migrates after 1s" in waited.stderr
        cursor.execute("SELECT RELEASE_LOCK(%s)", [LOCK_NAME])
        done = manage(stack, "migrate_locked", "--timeout", "1")
        assert done.returncode == 0, done.stderr
        assert "No migrations to apply" in done.stdout
        cursor.execute("SELECT IS_FREE_LOCK(%s)", [LOCK_NAME])
        assert cursor.fetchone() == (1,), "the lock outlived the command"
    finally:
        other.close()
