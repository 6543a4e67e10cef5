"""Django settings for channels_tutorial.

Every deployment-specific value comes from the environment through the typed model in
config.py, so a missing or malformed variable stops start-up with its name.
"""

import datetime
import os
from pathlib import Path

from pydantic import ValidationError

from .caches import redis_cache
from .config import Settings
from .guards import production_problems

BASE_DIR = Path(__file__).resolve().parent.parent

try:
    env = Settings(_secrets_dir=os.environ.get("SECRETS_DIR") or None)
except ValidationError as error:
    raise SystemExit(f"channels_tutorial: invalid environment\n{error}") from None

PRODUCTION = env.environment == "production"
if PRODUCTION and (problems := production_problems(env)):
    raise SystemExit(
        "channels_tutorial: refusing to start in production with unsafe settings:\n- "
        + "\n- ".join(problems)
    )

DEBUG = env.debug
# The status page, /api/status, /api/ping and the echo socket (core): development only.
DEBUG_ENDPOINTS = env.debug_endpoints
SECRET_KEY = env.secret_key.get_secret_value()
ALLOWED_HOSTS = env.allowed_hosts
CSRF_TRUSTED_ORIGINS = env.csrf_trusted_origins

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "realtime",
    "accounts",
    "core",
    "talk",
]

MIDDLEWARE = [
    # Health probes come from the container itself (Host 127.0.0.1, plain HTTP): answer
    # them before host validation and the HTTPS redirect.
    "core.middleware.HealthProbeMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Static files on Django's own port too (http://localhost:8080, for debugging), from
    # what collectstatic wrote; through nginx they never reach Django (WhiteNoise: the
    # well-kept way to serve them from Gunicorn, where Django's static view needs
    # runserver and DEBUG).
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "channels_tutorial.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# Served by Gunicorn's Uvicorn workers; there is no WSGI entry point.
ASGI_APPLICATION = "channels_tutorial.asgi.application"

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.mysql",
        "NAME": env.mysql_database,
        "USER": env.mysql_user,
        "PASSWORD": env.mysql_password.get_secret_value(),
        "HOST": env.mysql_host,
        "PORT": env.mysql_port,
        # Under ASGI each request may run in another thread: persistent connections
        # would pile up, so Django advises closing them after every request.
        "CONN_MAX_AGE": 0,
        "OPTIONS": {"charset": "utf8mb4"},
        "TEST": {"CHARSET": "utf8mb4", "COLLATION": "utf8mb4_unicode_ci"},
    }
}

# Prometheus metrics on /metrics (docs/monitoring.md): the sockets' own (realtime), and
# HTTP and database figures from django-prometheus. Its middleware goes last, so that it
# sees the view; its PrometheusBeforeMiddleware (the time through the other middleware)
# is left out: it cost a tenth of the counting on a small view.
METRICS = env.metrics
if METRICS:
    INSTALLED_APPS.append("django_prometheus")
    # django-prometheus's, called without hops to the sync thread (metrics/http.py).
    MIDDLEWARE.append("metrics.http.PrometheusAfterMiddleware")
    # Django's MySQL backend, its queries and errors counted.
    DATABASES["default"]["ENGINE"] = "django_prometheus.db.backends.mysql"

# Redis carries messages between the Uvicorn worker processes (and between hosts).
CHANNEL_LAYER_BACKENDS = {
    # channels-redis's own, as the book has it (docs/channels-redis.md: what it lacks).
    "core": "channels_redis.core.RedisChannelLayer",
    "pubsub": "channels_redis.pubsub.RedisPubSubChannelLayer",
    "fanout": "realtime.fanout.FanoutChannelLayer",
}
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": CHANNEL_LAYER_BACKENDS[env.channel_layer],
        # Losing Redis: the fanout layer subscribes again and its rooms catch up from
        # MySQL with sockets open (docs/fanout.md); on the others sockets reconnect.
        "CONFIG": {
            "hosts": env.redis_hosts,
            **(
                {"capacity": env.channel_capacity, "expiry": env.channel_expiry}
                if env.channel_layer in ("fanout", "core")
                else {}
            ),
        },
    }
}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# The realtime base's (realtime/): each socket's flood limit, resume, guests, tickets
# and presence; config.py says why each default is what it is.
WS_RATE_LIMIT = env.ws_rate_limit
WS_RATE_BURST = env.ws_rate_burst
REALTIME_RESUME_LIMIT = env.realtime_resume_limit
REALTIME_STREAM_CHECK = env.realtime_stream_check
REALTIME_GUESTS = env.realtime_guests
REALTIME_TICKET_MAX_AGE = env.realtime_ticket_max_age
REALTIME_PRESENCE = env.realtime_presence
REALTIME_PRESENCE_TTL = env.realtime_presence_ttl
REALTIME_USER_SOCKETS = env.realtime_user_sockets
REALTIME_WORKER_SOCKETS = env.realtime_worker_sockets
REALTIME_SOCKET_MEMORY = env.realtime_socket_memory
REALTIME_WORKERS = env.web_concurrency

# After signing in or out (accounts/), back to the chat (talk/).
LOGIN_REDIRECT_URL = "talk:index"
LOGOUT_REDIRECT_URL = "talk:index"

# Failed sign-ins throttled by django-axes (docs/production.md, "Limits"), counted per
# username and per address in Redis, where every worker and replica reads the same
# counts; a lockout ends by itself, or `manage.py axes_reset_username NAME` lifts it.
INSTALLED_APPS.append("axes")
# Last: a lockout's 429 page replaces the sign-in page the view made.
MIDDLEWARE.append("axes.middleware.AxesMiddleware")
AUTHENTICATION_BACKENDS = [
    # First: a locked-out sign-in is refused before its password is even checked.
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    "sign_in": redis_cache(env.redis_hosts[0]),
}
AXES_CACHE = "sign_in"
AXES_HANDLER = "axes.handlers.cache.AxesCacheHandler"
# The address is REMOTE_ADDR (django-ipware is not installed): the client's, as Uvicorn
# takes it from nginx's X-Forwarded-For, never a header the client set itself.
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_FAILURE_LIMIT = env.sign_in_failure_limit
AXES_COOLOFF_TIME = datetime.timedelta(seconds=env.sign_in_lockout)
# Guesses during a lockout do not lengthen it, or anyone could keep an account locked.
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
# The right password clears its username's and address's failures.
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "accounts.views.locked_out"
# Its admin pages list the database's attempts; these are in Redis.
AXES_ENABLE_ADMIN = False

STATIC_URL = "/static/"
# collectstatic writes here; nginx serves the same folder (a shared volume in Compose).
STATIC_ROOT = env.static_root
STATICFILES_DIRS = [BASE_DIR / "static"]

if PRODUCTION:
    # TLS ends at a proxy in front of nginx, which passes X-Forwarded-Proto on; Uvicorn
    # turns it into request.scheme (FORWARDED_ALLOW_IPS), so Django knows it was HTTPS.
    SECURE_SSL_REDIRECT = env.secure_ssl_redirect
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env.secure_hsts_seconds
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env.secure_hsts_include_subdomains
    SECURE_HSTS_PRELOAD = env.secure_hsts_preload

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "INFO"},
}
