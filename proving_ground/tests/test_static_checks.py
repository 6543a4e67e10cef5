"""What cannot run here (Docker) is checked statically; the compose file is held
against the configs it wires together."""

import json
import re
import runpy
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from django.urls import resolve

from proving_ground.stacks import compose
from proving_ground.stacks.compose import ROOT
from proving_ground.stacks.native import NativeStack, render_template

BIN = Path(sys.executable).parent
SERVICES = compose.load()
# The same files with each service's env_file paths kept.
UNRESOLVED = compose.compose_config(env_files=False)["services"]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def run(*command, cwd=ROOT):
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=120)


def test_compose_validates_the_development_project():
    compose.compose_config()  # raises with Compose's own message


def test_compose_refuses_an_invalid_file(tmp_path):
    broken = tmp_path / "docker-compose.yml"
    broken.write_text("services:\n  web:\n    image: x\n    restrat: always\n")
    with pytest.raises(compose.ComposeError, match="restrat"):
        compose.compose_config(broken)


def test_dockerfile_passes_hadolint():
    result = run(str(BIN / "hadolint"), "Django/Dockerfile")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("address_limits", [True, False], ids=["as shipped", "lifted"])
def test_rendered_nginx_config_passes_nginx_t(tmp_path, address_limits):
    result = NativeStack(run_dir=tmp_path, address_limits=address_limits).nginx_test()
    assert result.returncode == 0, result.stderr
    assert "test is successful" in result.stderr


@pytest.mark.parametrize("folder", ["Django", "proving_ground"])
def test_python_code_passes_ruff(folder):
    # Each folder's own configuration: ruff.toml here extends Django/pyproject.toml.
    for command in (["check"], ["format", "--check"]):
        result = run(str(BIN / "ruff"), *command, ".", cwd=ROOT / folder)
        assert result.returncode == 0, result.stdout + result.stderr


def lint_imports(django: Path) -> subprocess.CompletedProcess:
    config = ROOT / "proving_ground/importlinter.ini"
    return subprocess.run(
        [str(BIN / "lint-imports"), str(config), "--no-cache"],
        cwd=django,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": f"{ROOT}:{django}"},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_import_contracts_hold():
    result = lint_imports(ROOT / "Django")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "4 kept, 0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "line"),
    [
        ("talk/services.py", "import proving_ground.clients"),
        ("realtime/layer.py", "import talk.models"),
        ("channels_tutorial/workers.py", "import realtime.metrics"),
        ("metrics/tally.py", "import realtime.metrics"),
    ],
)
def test_import_contracts_catch_a_breach(tmp_path, module, line):
    django = tmp_path / "Django"
    shutil.copytree(ROOT / "Django", django, ignore=shutil.ignore_patterns("static", "tests"))
    (django / module).write_text(f"{line}\n" + (django / module).read_text())
    result = lint_imports(django)
    assert result.returncode == 1 and "BROKEN" in result.stdout, result.stdout


def test_django_system_check_passes_with_the_compose_environment(tmp_path):
    env = {**NativeStack(run_dir=tmp_path).django_env(), "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--fail-level", "WARNING"],
        cwd=ROOT / "Django",
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


# -- the docs ----------------------------------------------------------------------------

LINK = re.compile(r"\]\(([^)\s]+)\)")


def test_every_relative_link_in_the_docs_resolves():
    documents = [ROOT / "README.md", *ROOT.glob("docs/**/*.md")]
    documents += ROOT.glob("proving_ground/benchmarks/**/*.md")
    broken = []
    for document in documents:
        for target in LINK.findall(document.read_text()):
            path = target.split("#")[0]
            external = target.startswith(("http://", "https://", "mailto:"))
            if path and not external and not (document.parent / path).exists():
                broken.append(f"{document.relative_to(ROOT)}: {target}")
    assert broken == []


def test_the_readme_stays_short():
    # The reader's order in at most 150 lines; the rest is in docs/.
    assert len((ROOT / "README.md").read_text().splitlines()) <= 150


# -- the compose file against the configs ----------------------------------------------


def test_no_version_key_and_the_four_services():
    assert "version" not in COMPOSE
    assert set(SERVICES) == {"nginx", "django", "mysql", "redis"}


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_every_bind_mount_source_and_env_file_exists(name):
    service = SERVICES[name]
    for env_file in UNRESOLVED[name].get("env_file", []):
        assert Path(env_file["path"]).is_file(), env_file
    for volume in service.spec.get("volumes", []):
        if volume["type"] == "bind":
            assert service.bind_source(volume["target"]).exists()


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_every_service_has_healthcheck_init_and_restart(name):
    spec = SERVICES[name].spec
    assert spec["healthcheck"]["test"]
    # Docker Engine 25+ checks every start_interval until healthy: up in seconds.
    assert spec["healthcheck"]["start_interval"]
    assert spec["init"] is True
    assert spec["restart"] in {"unless-stopped", "always", "on-failure"}


def test_start_order_waits_for_health():
    depends = {name: SERVICES[name].spec.get("depends_on", {}) for name in SERVICES}
    assert set(depends["django"]) == {"mysql", "redis"}
    assert set(depends["nginx"]) == {"django"}
    for needs in depends.values():
        assert all(need["condition"] == "service_healthy" for need in needs.values())


def test_mysql_healthcheck_goes_over_tcp():
    test = " ".join(SERVICES["mysql"].healthcheck_command())
    assert "--protocol=tcp" in test and "127.0.0.1" in test


def test_only_nginx_and_django_publish_ports_and_others_only_on_loopback():
    for name, service in SERVICES.items():
        for port in service.spec.get("ports", []):
            if name in {"mysql", "redis"}:
                assert port.get("host_ip") == "127.0.0.1"
    assert SERVICES["nginx"].spec["ports"][0]["published"] == "80"
    assert SERVICES["django"].spec["ports"][0]["published"] == "8080-8089"


@pytest.mark.parametrize(
    ("env", "address"), [({}, "127.0.0.1"), ({"DJANGO_PUBLISHED_ADDRESS": "0.0.0.0"}, "0.0.0.0")]
)
def test_djangos_debugging_port_is_local_unless_opened(env, address):
    (port,) = compose.compose_config(env=env)["services"]["django"]["ports"]
    assert (port["host_ip"], port["published"]) == (address, "8080-8089")


def gunicorn_config(env: dict) -> dict:
    saved = dict(__import__("os").environ)
    __import__("os").environ.update(env)
    try:
        return runpy.run_path(str(ROOT / "Django/gunicorn.conf.py"))
    finally:
        __import__("os").environ.clear()
        __import__("os").environ.update(saved)


def test_nginx_upstream_is_the_django_service_on_gunicorns_port():
    nginx_env = SERVICES["nginx"].env()
    rendered = render_template(
        (ROOT / "nginx/templates/default.conf.template").read_text(), nginx_env
    )
    upstream = re.search(r"set \$django_upstream ([\w.-]+):(\d+);", rendered)
    assert upstream, rendered
    host, port = upstream.group(1), int(upstream.group(2))
    assert host == "django" and host in SERVICES
    config = gunicorn_config(SERVICES["django"].env())
    assert config["bind"] == f"0.0.0.0:{port}"
    assert SERVICES["django"].container_port() == port
    assert config["wsgi_app"] == "channels_tutorial.asgi:application"
    assert config["worker_class"] == "channels_tutorial.workers.UvicornWorker"


def test_static_volume_mount_points_match_static_root_and_the_nginx_alias():
    static_root = SERVICES["django"].env()["STATIC_ROOT"]
    assert SERVICES["django"].volume_target("static") == static_root
    assert SERVICES["nginx"].volume_target("static") == static_root
    rendered = render_template(
        (ROOT / "nginx/templates/default.conf.template").read_text(), SERVICES["nginx"].env()
    )
    assert f"alias {static_root}/;" in rendered


@pytest.mark.parametrize("name", ["django", "nginx"])
def test_healthcheck_urls_exist_in_djangos_urlconf(name):
    path = SERVICES[name].healthcheck_path()
    assert resolve(path).url_name in {"healthz", "readyz"}


def test_stop_grace_period_outlasts_gunicorns_graceful_timeout():
    grace = SERVICES["django"].spec["stop_grace_period"]
    seconds = int(grace.rstrip("s"))
    assert seconds > gunicorn_config(SERVICES["django"].env())["graceful_timeout"]


def test_nginx_keeps_idle_websockets_longer_than_uvicorns_ping_interval():
    from channels_tutorial.workers import WS_PING_INTERVAL

    template = (ROOT / "nginx/templates/default.conf.template").read_text()
    timeout = int(re.search(r"proxy_read_timeout (\d+)s;", template).group(1))
    assert timeout > WS_PING_INTERVAL


def test_django_reads_the_database_credentials_from_the_mysql_env_file():
    django_files = [entry["path"] for entry in UNRESOLVED["django"]["env_file"]]
    assert UNRESOLVED["mysql"]["env_file"][0]["path"] in django_files
    assert "MYSQL_PASSWORD" not in (ROOT / "Django/.env.django").read_text()


def test_dockerfile_shape():
    dockerfile = (ROOT / "Django/Dockerfile").read_text()
    assert dockerfile.count("FROM python:3.11-slim-bookworm") == 1
    development, production = dockerfile.split(" AS development")[1].split(" AS production")
    assert re.search(r"^USER app$", development, re.M)  # by name: see the Dockerfile
    assert re.search(r"^USER \$\{UID\}:\$\{GID\}$", production, re.M)
    assert "libmariadb3" in dockerfile and "default-libmysqlclient-dev" in dockerfile
    assert re.search(r"poetry==\d+\.\d+\.\d+", dockerfile)
    assert 'CMD ["sh", "entrypoint.sh"]' in dockerfile
    assert (
        (ROOT / "Django/entrypoint.sh")
        .read_text()
        .rstrip()
        .splitlines()[-1]
        .startswith("exec gunicorn")
    )


def test_no_wsgi_entry_point_is_left_behind():
    assert not (ROOT / "Django/channels_tutorial/wsgi.py").exists()


def test_nginx_finds_django_replicas_through_dockers_dns():
    # A name in a variable is resolved per request by `resolver`; in an upstream block
    # nginx 1.22 resolves it once, at start-up, and never sees a replica added later.
    template = (ROOT / "nginx/templates/default.conf.template").read_text()
    assert not re.search(r"^\s*upstream ", template, re.M)
    assert re.search(r"proxy_pass http://\$django_upstream;", template)
    assert re.search(r"resolver \$\{NGINX_LOCAL_RESOLVERS\} valid=\d+s", template)
    # The image fills NGINX_LOCAL_RESOLVERS from /etc/resolv.conf when this is set.
    assert SERVICES["nginx"].env()["NGINX_ENTRYPOINT_LOCAL_RESOLVERS"] == "1"


def test_the_apps_project_lists_only_what_the_container_runs_and_unit_test_tools():
    import tomllib

    django = tomllib.loads((ROOT / "Django/pyproject.toml").read_text())
    tools = tomllib.loads((ROOT / "proving_ground/pyproject.toml").read_text())
    assert set(django["tool"]["poetry"].get("group", {})) == {"test"}
    runtime = {re.split(r"[ \[(<>=]", dep)[0] for dep in django["project"]["dependencies"]}
    proving = {re.split(r"[ \[(<>=]", dep)[0] for dep in tools["project"]["dependencies"]}
    assert not runtime & proving, "a package in both projects: one of them is wrong"


def test_the_swarm_stack_repeats_the_compose_files_values_exactly():

    stack = yaml.safe_load((ROOT / "docker-stack.yml").read_text())["services"]
    compose_config = compose.compose_config()["services"]
    for name in ("nginx", "mysql", "redis"):
        assert stack[name]["image"] == SERVICES[name].spec["image"]
    django_env = SERVICES["django"].env()
    for key in ("DJANGO_PORT", "STATIC_ROOT"):
        assert str(stack["django"]["environment"][key]) == django_env[key]
        assert str(stack["nginx"]["environment"][key]) == django_env[key]
    nginx_env = SERVICES["nginx"].env()
    assert str(stack["nginx"]["environment"]["NGINX_STATUS_PORT"]) == nginx_env["NGINX_STATUS_PORT"]
    assert stack["django"]["env_file"][:1] == ["./Django/.env.django"]
    assert stack["django"]["stop_grace_period"] == compose_config["django"]["stop_grace_period"]
    # Every service: DNS round robin (no IPVS needed), and nginx's port in host mode.
    assert {s["deploy"]["endpoint_mode"] for s in stack.values()} == {"dnsrr"}
    assert [p["mode"] for p in stack["nginx"]["ports"]] == ["host"]
    assert stack["django"]["deploy"]["update_config"]["order"] == "start-first"


def test_the_monitoring_override_reads_the_stacks_own_values():
    """Prometheus' config and the exporters' flags cannot read Compose's values: they
    repeat them, and here they must agree with what the stack defines."""
    merged = compose.compose_config(
        ROOT / "docker-compose.yml", ROOT / "docker-compose.monitoring.yml"
    )
    services = merged["services"]
    django_port = services["django"]["environment"]["DJANGO_PORT"]
    prometheus = yaml.safe_load((ROOT / "Prometheus/prometheus.yml").read_text())
    (django_job,) = [job for job in prometheus["scrape_configs"] if job["job_name"] == "django"]
    assert str(django_job["dns_sd_configs"][0]["port"]) == django_port
    assert django_job["dns_sd_configs"][0]["names"] == ["django"]
    status_port = services["nginx"]["environment"]["NGINX_STATUS_PORT"]
    assert (
        f"--nginx.scrape-uri=http://nginx:{status_port}/stub_status"
        in (services["nginx-exporter"]["command"])
    )
    exporter_user = services["mysql"]["environment"]["MYSQLD_EXPORTER_USER"]
    assert f"--mysqld.username={exporter_user}" in services["mysqld-exporter"]["command"]
    assert (
        f"--mysqld.address=mysql:{services['mysql']['expose'][0]}"
        in (services["mysqld-exporter"]["command"])
    )
    # Every scraped exporter is a service of the override, on its image's port.
    targets = {
        target
        for job in prometheus["scrape_configs"]
        for static in job.get("static_configs", [])
        for target in static["targets"]
    }
    assert targets == {
        "nginx-exporter:9113",
        "redis-exporter:9121",
        "mysqld-exporter:9104",
        "localhost:9090",
    }
    # The exporters' credentials come from env files, never from the Compose file.
    assert "MYSQLD_EXPORTER_PASSWORD" not in str(
        yaml.safe_load((ROOT / "docker-compose.monitoring.yml").read_text())
    )


def test_the_dashboard_reads_the_provisioned_prometheus():
    datasources = yaml.safe_load(
        (ROOT / "Grafana/provisioning/datasources/prometheus.yml").read_text()
    )["datasources"]
    (prometheus,) = datasources
    assert prometheus["url"] == "http://prometheus:9090"
    scrape = yaml.safe_load((ROOT / "Prometheus/prometheus.yml").read_text())["global"]
    assert prometheus["jsonData"]["timeInterval"] == scrape["scrape_interval"]
    provider = yaml.safe_load((ROOT / "Grafana/provisioning/dashboards/stack.yml").read_text())
    merged = compose.compose_config(
        ROOT / "docker-compose.yml", ROOT / "docker-compose.monitoring.yml"
    )["services"]["grafana"]
    mounts = {volume["target"] for volume in merged["volumes"]}
    assert provider["providers"][0]["options"]["path"] in mounts
    dashboard = json.loads((ROOT / "Grafana/dashboards/channels-stack.json").read_text())
    panels = [panel for panel in dashboard["panels"] if panel["type"] != "row"]
    assert panels and all(panel["targets"] for panel in panels)
    uids = {t["datasource"]["uid"] for panel in panels for t in panel["targets"]}
    assert uids == {prometheus["uid"]}
    # No two panels overlap on Grafana's 24-column grid.
    cells = set()
    for panel in dashboard["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        area = {
            (x, y)
            for x in range(grid["x"], grid["x"] + grid["w"])
            for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not area & cells, panel["title"]
        cells |= area
