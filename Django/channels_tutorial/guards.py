"""The guard that keeps development settings out of production."""

from .config import Settings

# Django's own bar for a SECRET_KEY (security.W009).
MIN_SECRET_KEY_LENGTH = 50
MIN_SECRET_KEY_UNIQUE_CHARACTERS = 5


# The development env files mark their secrets with these words.
DEVELOPMENT_MARKERS = ("django-insecure", "development", "generate-me")


def _looks_like_development(secret: str) -> bool:
    return any(marker in secret.lower() for marker in DEVELOPMENT_MARKERS)


def production_problems(env: Settings) -> list[str]:
    problems = []
    key = env.secret_key.get_secret_value()
    if _looks_like_development(key):
        problems.append("SECRET_KEY is the development key; generate one (see README)")
    elif len(key) < MIN_SECRET_KEY_LENGTH or len(set(key)) < MIN_SECRET_KEY_UNIQUE_CHARACTERS:
        problems.append(
            f"SECRET_KEY is too weak (at least {MIN_SECRET_KEY_LENGTH} random characters)"
        )
    if env.debug:
        problems.append("DEBUG is on; set DEBUG=0")
    elif env.debug_endpoints:
        problems.append("DEBUG_ENDPOINTS is on (versions, PIDs, an open echo socket); unset it")
    if not env.allowed_hosts:
        problems.append("ALLOWED_HOSTS is empty; list your domain names")
    elif any(host == "*" for host in env.allowed_hosts):
        problems.append("ALLOWED_HOSTS has the wildcard '*'; list your domain names")
    if _looks_like_development(env.mysql_password.get_secret_value()):
        problems.append("MYSQL_PASSWORD is the development password; set MySQL/.env.mysql.prod")
    redis_password = env.redis_password.get_secret_value() if env.redis_password else ""
    if not redis_password:
        problems.append("REDIS_PASSWORD is empty; production Redis requires a password")
    elif _looks_like_development(redis_password):
        problems.append("REDIS_PASSWORD is a placeholder; set Redis/.redis.env.prod")
    return problems
