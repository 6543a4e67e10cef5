"""The native runner itself: its errors, and a clean start and stop from the command line."""

import os
import signal
import subprocess
import sys
import time

import httpx
import psutil
import pytest

from proving_ground.stacks import compose, native
from proving_ground.stacks.compose import ROOT


def test_a_missing_server_names_the_debian_package(monkeypatch):
    real_which = native.shutil.which
    monkeypatch.setattr(
        native.shutil,
        "which",
        lambda name, path=None: None if name == "redis-server" else real_which(name, path=path),
    )
    with pytest.raises(native.StackError) as error:
        native.require_binaries()
    assert "redis-server (Debian package: redis-server)" in str(error.value)
    assert "apt-get install redis-server" in str(error.value)


def test_a_wrong_path_in_the_compose_file_is_an_error(tmp_path):
    broken = tmp_path / "docker-compose.yml"
    broken.write_text("services:\n  web:\n    image: x\n    env_file: [./.env.missing]\n")
    with pytest.raises(compose.ComposeError, match=r"\.env\.missing"):
        compose.load(broken)


def test_a_missing_mount_is_an_error():
    service = compose.load()["nginx"]
    with pytest.raises(compose.ComposeError, match="mounts nothing at /etc/nginx/elsewhere"):
        service.bind_source("/etc/nginx/elsewhere")


def test_mysql_init_sql_quotes_values():
    sql = native.mysql_init_sql(
        {"MYSQL_DATABASE": "d`b", "MYSQL_USER": "o'neil", "MYSQL_PASSWORD": "p\\w'"}, "r"
    )
    assert "CREATE DATABASE IF NOT EXISTS `d``b`;" in sql
    assert "'o''neil'@'%' IDENTIFIED BY 'p\\\\w'''" in sql


def processes_using(run_dir: str) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter(["cmdline", "environ"]):
        text = " ".join(process.info["cmdline"] or []) + str(process.info["environ"] or "")
        if run_dir in text and process.pid != os.getpid():
            found.append(process)
    return found


def test_command_line_runner_starts_everything_and_sigterm_leaves_nothing(tmp_path):
    run_dir = tmp_path / "run"
    env = {
        **os.environ,
        "HTTP_PORT": str(native.free_port()),
        "DJANGO_PORT": str(native.free_port()),
    }
    env.pop("DJANGO_SETTINGS_MODULE", None)
    runner = subprocess.Popen(
        [sys.executable, "-m", "proving_ground", "native", "--run-dir", str(run_dir)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        lines = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = runner.stdout.readline()
            lines.append(line)
            if "stack ready" in line or not line:
                break
        assert "stack ready" in lines[-1], "".join(lines)
        page = httpx.get(f"http://localhost:{env['HTTP_PORT']}/")
        assert page.status_code == 200
        assert processes_using(str(run_dir)), "expected the servers to be running"
        runner.send_signal(signal.SIGTERM)
        assert runner.wait(timeout=90) == 0
    finally:
        if runner.poll() is None:
            runner.kill()
    time.sleep(0.5)
    assert processes_using(str(run_dir)) == []


def test_a_literal_dollar_reaches_the_environment_as_one():
    # "$$scheme" in docker-compose.yml: nginx's own variable, not one for Compose.
    assert compose.load()["nginx"].env()["NGINX_FORWARDED_PROTO"] == "$scheme"


def test_production_files_come_from_configs_not_bind_mounts():
    services = compose.load(compose.COMPOSE_FILE, compose.PROD_FILE, env_files=False)
    assert services["mysql"].bind_source("/etc/mysql/conf.d/my.cnf") == ROOT / "MySQL/my.cnf"
    templates = dict(services["nginx"].mounted_dir("/etc/nginx/templates"))
    assert templates == {"default.conf.template": ROOT / "nginx/templates/default.conf.template"}
