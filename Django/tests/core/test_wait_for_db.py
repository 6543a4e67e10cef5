import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import call_command

PROJECT = Path(__file__).resolve().parents[2]


def test_gives_up_after_the_timeout_and_says_so():
    # The real settings and MySQL backend, pointed at a port where nothing listens.
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "channels_tutorial.settings",
        "MYSQL_HOST": "127.0.0.1",
        "MYSQL_PORT": "9",
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "wait_for_db", "--timeout", "2"],
        cwd=PROJECT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "database still unreachable after 2s" in result.stderr
    assert "retrying" in result.stderr  # each failed attempt is logged


@pytest.mark.django_db
def test_returns_when_the_database_answers(caplog):
    call_command("wait_for_db", timeout=5)
    assert "database ready" in caplog.text
