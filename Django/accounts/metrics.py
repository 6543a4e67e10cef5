"""Sign-ins, for the dashboards beside the sockets' (docs/monitoring.md)."""

from prometheus_client import Counter

LOGINS = Counter("accounts_logins_total", "Users signed in (Django's user_logged_in).")
LOGIN_FAILURES = Counter(
    "accounts_login_failures_total", "Sign-ins refused (Django's user_login_failed)."
)
LOCKED_OUT = Counter(
    "accounts_sign_ins_locked_out_total",
    "Sign-ins refused by the throttle (django-axes's user_locked_out): the failure that"
    " locked, and each one tried during the lockout.",
)


def count_login(**kwargs) -> None:
    LOGINS.inc()


def count_login_failure(**kwargs) -> None:
    LOGIN_FAILURES.inc()


def count_locked_out(**kwargs) -> None:
    LOCKED_OUT.inc()
