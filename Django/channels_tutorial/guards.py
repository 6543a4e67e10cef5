"""The guard that keeps development settings out of production."""

from .config import Settings

# Django's own bar for a SECRET_KEY (security.W009).
MIN_SECRET_KEY_LENGTH = 50
MIN_SECRET_KEY_UNIQUE_CHARACTERS = 5


def production_problems(env: Settings) -> list[str]:
    problems = []
    key = env.secret_key.get_secret_value()
    if key.startswith("django-insecure") or "DEVELOPMENT" in key.upper():
        problems.append("SECRET_KEY is the development key; generate one (see README)")
    elif len(key) < MIN_SECRET_KEY_LENGTH or len(set(key)) < MIN_SECRET_KEY_UNIQUE_CHARACTERS:
        problems.append(
            f"SECRET_KEY is too weak (at least {MIN_SECRET_KEY_LENGTH} random characters)"
        )
    if env.debug:
        problems.append("DEBUG is on; set DEBUG=0")
    if not env.allowed_hosts:
        problems.append("ALLOWED_HOSTS is empty; list your domain names")
    elif any(host == "*" for host in env.allowed_hosts):
        problems.append("ALLOWED_HOSTS has the wildcard '*'; list your domain names")
    return problems
