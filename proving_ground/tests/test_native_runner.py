"""The native runner itself: its errors, and a clean start and stop from the command line."""

import os
import signal
import subprocess
import sys
import time

import httpx
import psutil
import pytest

from proving_ground import compose, native
from proving_ground.compose import ROOT


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


def test_a_wrong_path_in_the_compose_file_is_an_error():
    spec = dict(compose.load()["django"].spec, env_file=["./Django/.env.missing"])
    service = compose.Service("django", spec, ROOT)
    with pytest.raises(compose.ComposeError, match=r"Django/\.env\.missing does not exist"):
        service.env()


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
        [sys.executable, "-m", "proving_ground.native", "--run-dir", str(run_dir)],
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


def test_compose_interpolation_is_applied_like_compose():
    environ = {"SET": "value", "EMPTY": ""}
    assert compose.interpolate("$$scheme", environ) == "$scheme"
    assert compose.interpolate("$${NGINX_PORT}", environ) == "${NGINX_PORT}"
    assert compose.interpolate("a ${SET} $SET", environ) == "a value value"
    assert compose.interpolate("${EMPTY:-dflt} ${EMPTY-dflt} ${NOPE-dflt}", environ) == "dflt  dflt"
    assert compose.load()["nginx"].env()["NGINX_FORWARDED_PROTO"] == "$scheme"


def test_override_files_merge_with_composes_rules(tmp_path):
    base = tmp_path / "base.yml"
    base.write_text(
        "services:\n"
        "  web:\n"
        "    env_file: [a.env]\n"
        "    ports: [{target: 80, published: '80'}]\n"
        "    volumes:\n"
        "      - {type: bind, source: ./code, target: /app}\n"
        "      - {type: volume, source: data, target: /data}\n"
        "    healthcheck: {test: [CMD, old]}\n"
    )
    override = tmp_path / "prod.yml"
    override.write_text(
        "services:\n"
        "  web:\n"
        "    env_file: [b.env]\n"
        "    ports: !reset []\n"
        "    volumes:\n"
        "      - {type: volume, source: other, target: /data}\n"
        "    healthcheck: {test: [CMD, new]}\n"
        "    environment: {A: 1}\n"
    )
    web = compose.read_files([base, override])["services"]["web"]
    assert web["env_file"] == ["a.env", "b.env"]  # appended
    assert "ports" not in web  # reset
    assert [v["target"] for v in web["volumes"]] == ["/app", "/data"]  # merged by target
    assert web["volumes"][1]["source"] == "other"
    assert web["healthcheck"]["test"] == ["CMD", "new"]  # replaced
    override.write_text(
        "services:\n  web:\n    volumes: !override\n      - {type: volume, source: x, target: /x}\n"
    )
    web = compose.read_files([base, override])["services"]["web"]
    assert web["volumes"] == [{"type": "volume", "source": "x", "target": "/x"}]


def test_production_files_come_from_configs_not_bind_mounts():
    services = compose.load(compose.COMPOSE_FILE, compose.PROD_FILE)
    assert services["mysql"].bind_source("/etc/mysql/conf.d/my.cnf") == ROOT / "MySQL/my.cnf"
    templates = dict(services["nginx"].mounted_dir("/etc/nginx/templates"))
    assert templates == {"default.conf.template": ROOT / "nginx/templates/default.conf.template"}
