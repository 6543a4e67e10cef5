"""Typed configuration read from the environment (Django/.env.django and the env files
that docker-compose.yml lists for the django service)."""

from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

CommaList = Annotated[list[str], NoDecode]

# redis-py's connection options for the channel layer's Redis (Settings.redis_hosts).
REDIS_CLIENT = {
    # channels-redis waits up to 5 s in BZPOPMIN (brpop_timeout) and redis-py 8 gives up
    # reading after 5 s by default: on a busy worker the reply loses that race and the
    # socket closes for nothing.
    "socket_timeout": 15,
    # A Redis whose host is gone (its container killed) never answers a connect, which
    # then waited socket_timeout, holding up the handshake that needed it; on a LAN or
    # a Docker network a connect takes milliseconds.
    "socket_connect_timeout": 2,
    # redis-py pools hold 100 connections per worker by default; when hundreds of sockets
    # join at once (a reconnect storm) that runs out and sockets fail with "Too many
    # connections". Redis allows 10000.
    "max_connections": 1000,
}
# For the Sentinels, asked where the primary is before every new connection: redis-py
# sets no timeout for them, so one that stopped answering hung every connect. Its
# default of 3 retries with backoff then took 26 s to give up; one retry, on a new
# connection (the next Sentinel behind the name, perhaps), takes 4 s at most.
SENTINEL_CLIENT = {"socket_timeout": 2, "socket_connect_timeout": 2, "retry": Retry(NoBackoff(), 1)}


class Workers(BaseSettings):
    """Gunicorn's worker processes: the server starts them, the app shares memory by them."""

    model_config = SettingsConfigDict(extra="ignore")

    web_concurrency: int = Field(default=2, ge=1)


class ServerSettings(Workers):
    """What Gunicorn needs; kept apart so the server starts without Django's secrets."""

    debug: bool = False
    django_port: int = Field(gt=0, lt=65536)
    graceful_timeout: int = Field(default=30, ge=1)
    forwarded_allow_ips: str = "127.0.0.1"
    # A listening socket per worker, the kernel spreading connections over them evenly.
    # Off, the workers share one socket and whichever wakes first takes the connection:
    # 1000 sockets opened one after another split about 3:1 over two (`make spread`).
    reuse_port: bool = True
    # Compress WebSocket frames (permessage-deflate) when the browser offers it. Off: chat
    # frames are a few hundred bytes, and the zlib state kept per socket doubled an idle
    # socket's memory and cost a tenth of broadcast throughput (`make bench-tune`).
    ws_per_message_deflate: bool = False
    # Seconds a client may take to read what was sent to it (the pong to a ping waits
    # behind it; a send waits at a full buffer) before its socket is closed with 4008: it
    # resumes what it missed when it reconnects.
    ws_send_timeout: float = Field(default=10.0, gt=0)


class Settings(Workers):
    """Everything settings.py needs. Unknown variables are ignored, missing ones are named."""

    # Secrets may also come as files named after the fields (secret_key, mysql_password,
    # redis_password) in SECRETS_DIR, e.g. Docker secrets in /run/secrets. A file there
    # wins over the environment, whose env files carry development values.
    model_config = SettingsConfigDict(extra="ignore")

    @classmethod
    def settings_customise_sources(
        cls, settings_cls, init_settings, env_settings, dotenv_settings, file_secret_settings
    ):
        return init_settings, file_secret_settings, env_settings, dotenv_settings

    environment: Literal["development", "production"] = "development"
    debug: bool = False
    # The stack's own probes for developers: the live status page at /, /api/status,
    # /api/ping and the /ws/echo/ socket. They show versions, PIDs and addresses, and any
    # client may broadcast through the echo socket, so they follow DEBUG unless set.
    debug_endpoints: bool | None = None
    secret_key: SecretStr
    allowed_hosts: CommaList = ["localhost", "127.0.0.1"]
    csrf_trusted_origins: CommaList = []

    mysql_database: str
    mysql_user: str
    mysql_password: SecretStr
    mysql_host: str = "mysql"
    mysql_port: int = 3306

    # One URL, or several separated by commas: channels-redis then spreads channels and
    # groups over them by consistent hashing (every worker must list the same URLs in the
    # same order). Redis Cluster is not supported by channels-redis (docs/scaling.md).
    redis_url: CommaList = ["redis://redis:6379/0"]
    # Redis behind Sentinels (docker-compose.sentinel.yml): "host:port" of each Sentinel,
    # comma-separated. When set, the layer asks them for REDIS_SENTINEL_MASTER's current
    # primary, and REDIS_URL is not used.
    redis_sentinels: CommaList = []
    redis_sentinel_master: str = "mymaster"
    # Passed to Redis as connection options, never spliced into the URL, so any
    # character works in a password.
    redis_username: str | None = None
    redis_password: SecretStr | None = None
    # The channel layer: "fanout" (realtime/fanout.py, the stack's own: groups kept per
    # worker, each message decoded and its frames built once per worker; the default by
    # measurement, docs/evidence/benchmarks.md), "core" (channels-redis's RedisChannelLayer: lists
    # and sorted sets, queued per channel) or "pubsub" (channels-redis's
    # RedisPubSubChannelLayer: PUBLISH/SUBSCRIBE).
    channel_layer: Literal["core", "pubsub", "fanout"] = "fanout"
    # RedisChannelLayer: messages a worker may have waiting in Redis before new ones
    # are dropped. All of a worker's sockets share that one queue, so channels-redis's
    # default of 100 dropped 60% of a ten-sender burst (`make bench-tune`); 1000 dropped
    # none. A waiting message older than channel_expiry seconds is discarded. (fanout:
    # the events one socket may have waiting in its worker, and the messages a plain
    # channel's queue in Redis keeps, for channel_expiry seconds.)
    channel_capacity: int = Field(default=1000, ge=1)
    channel_expiry: int = Field(default=60, ge=1)

    # The realtime base's (realtime/). Frames a second each of its sockets may send
    # (bursts of ws_rate_burst).
    ws_rate_limit: float = Field(default=10.0, gt=0)
    ws_rate_burst: int = Field(default=20, ge=1)
    # How many missed messages a reconnecting client gets replayed; past that it gets the
    # latest page and a marker that some may be missing.
    realtime_resume_limit: int = Field(default=1000, ge=1)
    # Seconds between each worker's checks of its chat rooms' last offsets in MySQL on the
    # stack's own layer (realtime/fanout.py): a room whose last message's broadcast was
    # lost (Redis restarting as it was sent) gets it within this.
    realtime_stream_check: float = Field(default=5.0, gt=0)
    # Sockets without a signed-in user (no session, no ticket): let them in, their
    # messages marked as a guest's, or refuse them (close code 4401).
    realtime_guests: bool = True
    # Seconds a ticket (for clients without the session cookie) stays valid: long enough
    # to open a socket with it, short enough that a leaked one is soon worthless.
    realtime_ticket_max_age: int = Field(default=30, ge=1)
    # Who is in each chat room (realtime/presence.py), and how many seconds the sockets of
    # a worker that died without a goodbye still show: each worker refreshes its own
    # every third of that.
    realtime_presence: bool = True
    realtime_presence_ttl: float = Field(default=15.0, ge=3)
    # Sockets one signed-in user may hold open at once, on every worker and replica (0: no
    # cap): a person's tabs and devices, while one account cannot hold the server's
    # sockets; past it, close code 4429.
    realtime_user_sockets: int = Field(default=20, ge=0)
    # Sockets one worker may hold open at once; unset, what the container's memory limit
    # leaves after every process's own, at realtime_socket_memory KiB a socket (0: no cap).
    # Past it, a handshake is closed with 1013, "try again later", before the worker nears
    # the limit where the kernel would kill the container and drop every socket at once.
    realtime_worker_sockets: int | None = Field(default=None, ge=0)
    # KiB a socket takes in its worker: an idle chat socket measures 33 to 37 (`make
    # faults`' socket_flood row; in the container, docs/production.md), and room is left
    # for what a busy socket buffers.
    realtime_socket_memory: int = Field(default=64, ge=1)
    # Failed sign-ins (django-axes, accounts/): after sign_in_failure_limit of them for one
    # username, or from one address, sign-in is refused for sign_in_lockout seconds. Ten
    # is a person's typos many times over; a quarter of an hour makes guessing slow
    # (ten tries in 15 minutes is 960 a day) and ends without an admin.
    sign_in_failure_limit: int = Field(default=10, ge=1)
    sign_in_lockout: int = Field(default=900, ge=1)
    # Prometheus metrics on /metrics (docs/monitoring.md); 0 saves what counting costs.
    metrics: bool = True

    static_root: Path

    # The domain nginx serves HTTPS for (docker-compose.tls.yml, certbot/.env.certbot.prod):
    # it joins ALLOWED_HOSTS, and https://TLS_DOMAIN joins CSRF_TRUSTED_ORIGINS.
    tls_domain: str = ""

    # Production only (behind a TLS-terminating proxy, see docs/production.md).
    secure_ssl_redirect: bool = True
    secure_hsts_seconds: int = Field(default=60, ge=0)
    secure_hsts_include_subdomains: bool = True
    secure_hsts_preload: bool = True

    @field_validator(
        "allowed_hosts", "csrf_trusted_origins", "redis_url", "redis_sentinels", mode="before"
    )
    @classmethod
    def _split_commas(cls, value: object) -> object:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: list[str]) -> list[str]:
        for url in value:
            if urlsplit(url).scheme not in {"redis", "rediss", "unix"}:
                raise ValueError(
                    f"{url!r}: each URL must start with redis://, rediss:// or unix://"
                )
        if not value:
            raise ValueError("REDIS_URL names no Redis")
        return value

    @field_validator("redis_sentinels")
    @classmethod
    def _host_and_port(cls, value: list[str]) -> list[str]:
        for address in value:
            host, _, port = address.rpartition(":")
            if not host or not port.isdigit():
                raise ValueError(f"{address!r}: each Sentinel must be host:port")
        return value

    @model_validator(mode="after")
    def _tls_domain_is_served(self) -> "Settings":
        if self.tls_domain and self.tls_domain not in self.allowed_hosts:
            self.allowed_hosts.append(self.tls_domain)
        origin = f"https://{self.tls_domain}"
        if self.tls_domain and origin not in self.csrf_trusted_origins:
            self.csrf_trusted_origins.append(origin)
        return self

    @model_validator(mode="after")
    def _debug_endpoints_follow_debug(self) -> "Settings":
        if self.debug_endpoints is None:
            self.debug_endpoints = self.debug
        return self

    @property
    def redis_hosts(self) -> list[dict]:
        """channels-redis's hosts: one per REDIS_URL, or the Sentinel-managed primary;
        REDIS_USERNAME and REDIS_PASSWORD (from Redis/.redis.env) as redis-py connection
        options where they are set (for Sentinels too), and REDIS_CLIENT's bounds."""
        password = self.redis_password.get_secret_value() if self.redis_password else ""
        options = {"username": self.redis_username, "password": password or None}
        options = {k: v for k, v in options.items() if v}
        if self.redis_sentinels:
            addresses = (address.rpartition(":") for address in self.redis_sentinels)
            return [
                {
                    "sentinels": [(host, int(port)) for host, _, port in addresses],
                    "master_name": self.redis_sentinel_master,
                    "sentinel_kwargs": {**options, **SENTINEL_CLIENT},
                    **options,
                    **REDIS_CLIENT,
                }
            ]
        return [{"address": url, **options, **REDIS_CLIENT} for url in self.redis_url]
