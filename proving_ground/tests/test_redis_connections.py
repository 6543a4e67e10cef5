"""The channel layer's Redis connection as the settings build it (REDIS_URL, REDIS_USERNAME,
REDIS_PASSWORD), against real redis-server processes: a password with URL delimiters, an
ACL user, an IPv6 address, TLS (rediss://) and a unix socket. The credentials travel as
connection options, never spliced into the URL."""

import asyncio
import contextlib
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis
from channels_redis.core import RedisChannelLayer
from pydantic import SecretStr

from proving_ground.stacks.native import free_port, require_binaries

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "Django"))
from channels_tutorial.config import Settings  # noqa: E402
from realtime.fanout import FanoutChannelLayer  # noqa: E402

# The default layer, and channels-redis's (CHANNEL_LAYER=core): both build their
# connections from the same hosts.
LAYERS = (FanoutChannelLayer, RedisChannelLayer)

PASSWORD = "p@ss/w#rd:?%x"  # every character a URL gives a meaning to
REQUIRED = {
    "secret_key": "test",
    "mysql_database": "test",
    "mysql_user": "test",
    "mysql_password": "test",
    "static_root": "/tmp",
}


@contextlib.contextmanager
def redis_server(*args: str, client: dict):
    """A throwaway redis-server with `args`; `client` reaches it as redis-py kwargs."""
    binary = require_binaries()["redis-server"]
    process = subprocess.Popen(
        [binary, "--save", "", "--appendonly", "no", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_answering(process, client, f"redis-server {args}")
        yield
    finally:
        process.terminate()
        process.wait(10)


def wait_answering(process: subprocess.Popen, client: dict, what: str) -> None:
    """Until `process` answers PING as redis-py kwargs `client` reach it (10 s at most)."""
    deadline = time.monotonic() + 10
    while True:
        with contextlib.suppress(redis.ConnectionError), redis.Redis(**client) as probe:
            probe.ping()
            return
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not start: {process.stdout.read()}")
        time.sleep(0.1)


async def round_trip(settings: Settings) -> dict:
    """A message through each channel layer built from `settings`, as settings.py does;
    what each received, if the same."""
    received = []
    for layer_class in LAYERS:
        layer = layer_class(hosts=settings.redis_hosts)
        try:
            channel = await layer.new_channel()
            await layer.send(channel, {"type": "hello"})
            received.append(await asyncio.wait_for(layer.receive(channel), 10))
        finally:
            await layer.flush()
    assert all(each == received[0] for each in received), received
    return received[0]


def settings(url: str, **env) -> Settings:
    return Settings(**REQUIRED, redis_url=url, **env)


def test_a_password_with_url_delimiters():
    port = free_port()
    with redis_server(
        "--port", str(port), "--requirepass", PASSWORD, client={"port": port, "password": PASSWORD}
    ):
        configured = settings(f"redis://127.0.0.1:{port}/0", redis_password=PASSWORD)
        assert PASSWORD not in str(configured.redis_url)
        assert asyncio.run(round_trip(configured)) == {"type": "hello"}
        wrong = settings(f"redis://127.0.0.1:{port}/0", redis_password="wrong")
        with pytest.raises(redis.AuthenticationError):
            asyncio.run(round_trip(wrong))


def test_an_acl_user():
    port = free_port()
    acl = ["--user", "default", "off", "--user", "chat", "on", f">{PASSWORD}", "~*", "&*", "+@all"]
    with redis_server(
        "--port", str(port), *acl, client={"port": port, "username": "chat", "password": PASSWORD}
    ):
        configured = settings(
            f"redis://127.0.0.1:{port}/0", redis_username="chat", redis_password=PASSWORD
        )
        assert asyncio.run(round_trip(configured)) == {"type": "hello"}


def test_an_ipv6_address():
    port = free_port()
    with redis_server("--bind", "::1", "--port", str(port), client={"host": "::1", "port": port}):
        configured = settings(f"redis://[::1]:{port}/0", redis_password=SecretStr(""))
        assert asyncio.run(round_trip(configured)) == {"type": "hello"}


def test_tls(tmp_path):
    cert, key = tmp_path / "redis.crt", tmp_path / "redis.key"
    subprocess.run(
        [require_binaries({"openssl": "openssl"})["openssl"], "req", "-x509", "-newkey",
         "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost", "-addext",
         "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )  # fmt: skip
    port = free_port()
    tls = ["--port", "0", "--tls-port", str(port), "--tls-cert-file", str(cert)]
    tls += ["--tls-key-file", str(key), "--tls-ca-cert-file", str(cert)]
    tls += ["--tls-auth-clients", "no", "--requirepass", PASSWORD]
    client = {"port": port, "password": PASSWORD, "ssl": True, "ssl_ca_certs": str(cert)}
    with redis_server(*tls, client=client):
        url = f"rediss://127.0.0.1:{port}/0?ssl_ca_certs={cert}"
        configured = settings(url, redis_password=PASSWORD)
        assert asyncio.run(round_trip(configured)) == {"type": "hello"}


def test_a_unix_socket(tmp_path):
    path = tmp_path / "redis.sock"
    with redis_server(
        "--port", "0", "--unixsocket", str(path), "--requirepass", PASSWORD,
        client={"unix_socket_path": str(path), "password": PASSWORD},
    ):  # fmt: skip
        configured = settings(f"unix://{path}?db=0", redis_password=PASSWORD)
        assert asyncio.run(round_trip(configured)) == {"type": "hello"}


def test_a_sentinel_that_stops_answering_fails_the_connect_instead_of_hanging(tmp_path):
    # redis-py gives Sentinel connections no timeout of their own (SENTINEL_CLIENT in
    # channels_tutorial/config.py sets one): every new Redis connection first asks a
    # Sentinel where the primary is, and hung for as long as that Sentinel was silent.
    port, sentinel_port = free_port(), free_port()
    conf = tmp_path / "sentinel.conf"
    conf.write_text(f"port {sentinel_port}\nsentinel monitor chat 127.0.0.1 {port} 1\n")
    with (
        redis_server("--port", str(port), client={"port": port}),
        sentinel_server(conf, sentinel_port) as sentinel,
    ):
        configured = settings(
            "redis://unused:6379/0",
            redis_sentinels=f"127.0.0.1:{sentinel_port}",
            redis_sentinel_master="chat",
        )
        assert asyncio.run(round_trip(configured)) == {"type": "hello"}
        sentinel.send_signal(signal.SIGSTOP)  # connects still succeed, nothing answers
        try:
            with pytest.raises(redis.ConnectionError, match="No master found"):
                asyncio.run(asyncio.wait_for(round_trip(configured), 60))
        finally:
            sentinel.send_signal(signal.SIGCONT)


@contextlib.contextmanager
def sentinel_server(conf: Path, port: int):
    binary = require_binaries()["redis-server"]
    process = subprocess.Popen(
        [binary, str(conf), "--sentinel"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_answering(process, {"port": port}, "redis-server --sentinel")
        yield process
    finally:
        process.terminate()
        process.wait(10)
