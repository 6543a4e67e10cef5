"""Sign-ins, for the dashboards beside the sockets' (docs/monitoring.md)."""

from prometheus_client import Counter

LOGINS = Counter("accounts_logins_total", "Users signed in (Django's user_logged_in).")
LOGIN_FAILURES = Counter(
    "accounts_login_failures_total", "Sign-ins refused (Django's user_login_failed)."
)


def count_login(**kwargs) -> None:
    LOGINS.inc()


def count_login_failure(**kwargs) -> None:
    LOGIN_FAILURES.inc()
