"""Production refuses unsafe settings, and is clean under `check --deploy`."""

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[2]
SAFE = {
    "ENVIRONMENT": "production",
    "DEBUG": "0",
    "SECRET_KEY": secrets.token_urlsafe(50),
    "ALLOWED_HOSTS": "chat.example.com",
    "CSRF_TRUSTED_ORIGINS": "https://chat.example.com",
    "MYSQL_DATABASE": "d",
    "MYSQL_USER": "u",
    "MYSQL_PASSWORD": secrets.token_urlsafe(20),
    "REDIS_PASSWORD": secrets.token_urlsafe(20),
    "STATIC_ROOT": "/tmp",
    "SECURE_HSTS_SECONDS": "31536000",
}


def manage(*args: str, **overrides: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in SAFE and k != "DJANGO_SETTINGS_MODULE"}
    env.update(SAFE, **overrides)
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=PROJECT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_check_deploy_is_clean_in_production():
    result = manage("check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"SECRET_KEY": "django-insecure-DEVELOPMENT-ONLY-change-me-for-production"},
            "development key",
        ),
        ({"SECRET_KEY": "short"}, "too weak"),
        ({"DEBUG": "1"}, "DEBUG is on"),
        ({"DEBUG_ENDPOINTS": "1"}, "DEBUG_ENDPOINTS is on"),
        ({"ALLOWED_HOSTS": "*"}, "wildcard"),
        ({"ALLOWED_HOSTS": ""}, "ALLOWED_HOSTS is empty"),
        ({"MYSQL_PASSWORD": "development-only-password"}, "MYSQL_PASSWORD is the development"),
        ({"REDIS_PASSWORD": ""}, "REDIS_PASSWORD is empty"),
        ({"REDIS_PASSWORD": "generate-me"}, "REDIS_PASSWORD is a placeholder"),
    ],
)
def test_unsafe_production_settings_are_refused_with_one_clear_message(overrides, message):
    result = manage("check", **overrides)
    assert result.returncode == 1
    assert "refusing to start in production with unsafe settings" in result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_a_missing_secret_key_is_named():
    env_without_key = {"SECRET_KEY": ""}
    result = manage("check", **env_without_key)
    assert result.returncode == 1 and "SECRET_KEY" in result.stderr.upper()


def test_secrets_can_come_from_a_secrets_dir(tmp_path):
    # A secret file wins over the variable (docker-stack.yml: the env files still carry
    # the development key).
    (tmp_path / "secret_key").write_text(secrets.token_urlsafe(50))
    env = {**SAFE, "SECRET_KEY": "django-insecure-x", "SECRETS_DIR": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": os.environ["PATH"], **env},
    )
    assert result.returncode == 0, result.stderr
    # Without the file, the variable answers, and the guard refuses the development key.
    (tmp_path / "secret_key").unlink()
    result = manage("check", "--deploy", SECRETS_DIR=str(tmp_path), SECRET_KEY="django-insecure-x")
    assert result.returncode == 1 and "development key" in result.stderr
