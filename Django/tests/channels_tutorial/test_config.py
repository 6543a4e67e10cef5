import pytest
from pydantic import ValidationError

from channels_tutorial.config import REDIS_CLIENT, SENTINEL_CLIENT, ServerSettings, Settings

REQUIRED = {
    "SECRET_KEY": "s",
    "MYSQL_DATABASE": "db",
    "MYSQL_USER": "u",
    "MYSQL_PASSWORD": "p",
    "STATIC_ROOT": "/srv/static",
}


@pytest.fixture
def environ(monkeypatch):
    for key in [
        "ALLOWED_HOSTS",
        "REDIS_URL",
        "REDIS_SENTINELS",
        "REDIS_USERNAME",
        "REDIS_PASSWORD",
        "DEBUG",
        "DEBUG_ENDPOINTS",
        *REQUIRED,
    ]:
        monkeypatch.delenv(key, raising=False)
    for key, value in REQUIRED.items():
        monkeypatch.setenv(key, value)
    return monkeypatch


def test_lists_are_comma_separated(environ):
    environ.setenv("ALLOWED_HOSTS", "example.com, www.example.com,")
    assert Settings().allowed_hosts == ["example.com", "www.example.com"]


def test_the_tls_domain_is_an_allowed_host_and_a_trusted_https_origin(environ):
    environ.setenv("ALLOWED_HOSTS", "chat.example.com")
    environ.setenv("CSRF_TRUSTED_ORIGINS", "https://chat.example.com")
    settings = Settings(tls_domain="chat.example.com")
    assert settings.allowed_hosts == ["chat.example.com"]
    assert settings.csrf_trusted_origins == ["https://chat.example.com"]
    environ.setenv("TLS_DOMAIN", "talk.example.org")
    settings = Settings()
    assert settings.allowed_hosts == ["chat.example.com", "talk.example.org"]
    assert settings.csrf_trusted_origins == ["https://chat.example.com", "https://talk.example.org"]


def test_debug_is_off_unless_set(environ):
    assert Settings().debug is False
    environ.setenv("DEBUG", "1")
    assert Settings().debug is True


def test_redis_credentials_are_connection_options_not_part_of_the_url(environ):
    environ.setenv("REDIS_URL", "redis://redis:6379/0")
    assert Settings().redis_hosts == [{"address": "redis://redis:6379/0", **REDIS_CLIENT}]
    environ.setenv("REDIS_PASSWORD", "p@ss/w#rd:")
    environ.setenv("REDIS_USERNAME", "chat")
    assert Settings().redis_hosts == [
        {
            "address": "redis://redis:6379/0",
            "username": "chat",
            "password": "p@ss/w#rd:",
            **REDIS_CLIENT,
        }
    ]


def test_several_redis_urls_are_shards_in_their_order(environ):
    environ.setenv("REDIS_URL", "redis://redis-1:6379/0, redis://redis-2:6379/0")
    environ.setenv("REDIS_PASSWORD", "pw")
    assert Settings().redis_hosts == [
        {"address": "redis://redis-1:6379/0", "password": "pw", **REDIS_CLIENT},
        {"address": "redis://redis-2:6379/0", "password": "pw", **REDIS_CLIENT},
    ]


def test_sentinels_replace_the_url_and_get_the_credentials_too(environ):
    environ.setenv("REDIS_SENTINELS", "sentinel-1:26379,sentinel-2:26379")
    environ.setenv("REDIS_SENTINEL_MASTER", "chat")
    environ.setenv("REDIS_PASSWORD", "pw")
    assert Settings().redis_hosts == [
        {
            "sentinels": [("sentinel-1", 26379), ("sentinel-2", 26379)],
            "master_name": "chat",
            "sentinel_kwargs": {"password": "pw", **SENTINEL_CLIENT},
            "password": "pw",
            **REDIS_CLIENT,
        }
    ]


@pytest.mark.parametrize("value", ["sentinel-1", "sentinel-1:port", ":26379"])
def test_a_sentinel_without_host_and_port_is_named(environ, value):
    environ.setenv("REDIS_SENTINELS", value)
    with pytest.raises(ValidationError, match="each Sentinel must be host:port"):
        Settings()


def test_debug_endpoints_follow_debug_unless_set(environ):
    assert Settings().debug_endpoints is False
    environ.setenv("DEBUG", "1")
    assert Settings().debug_endpoints is True
    environ.setenv("DEBUG_ENDPOINTS", "0")
    assert Settings().debug_endpoints is False


def test_missing_secret_key_is_named(environ):
    environ.delenv("SECRET_KEY")
    with pytest.raises(ValidationError, match="secret_key"):
        Settings()


@pytest.mark.parametrize("value", ["http://redis:6379", "redis://a:6379,http://b:6379"])
def test_redis_url_must_be_redis_urls(environ, value):
    environ.setenv("REDIS_URL", value)
    with pytest.raises(ValidationError, match="each URL must start with redis://"):
        Settings()


def test_an_empty_redis_url_is_refused(environ):
    environ.setenv("REDIS_URL", " , ")
    with pytest.raises(ValidationError, match="REDIS_URL names no Redis"):
        Settings()


def test_server_settings_need_only_the_port(monkeypatch):
    monkeypatch.setenv("DJANGO_PORT", "8080")
    monkeypatch.delenv("WEB_CONCURRENCY", raising=False)
    server = ServerSettings()
    assert (server.django_port, server.web_concurrency) == (8080, 2)
    monkeypatch.setenv("DJANGO_PORT", "0")
    with pytest.raises(ValidationError, match="django_port"):
        ServerSettings()


def test_redis_reads_outlast_channels_redis_blocking_receive():
    from channels_redis.core import RedisChannelLayer

    from channels_tutorial import settings

    (host,) = settings.CHANNEL_LAYERS["default"]["CONFIG"]["hosts"]
    assert host["socket_timeout"] > 2 * RedisChannelLayer.brpop_timeout


def test_the_layer_gets_the_tuned_capacity_and_expiry():
    from channels_redis.core import RedisChannelLayer

    from channels_tutorial import settings

    layer = RedisChannelLayer(**settings.CHANNEL_LAYERS["default"]["CONFIG"])
    assert (layer.capacity, layer.expiry) == (1000, 60)  # channels-redis's own: (100, 60)
