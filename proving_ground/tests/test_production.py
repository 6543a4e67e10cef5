"""Production mode: docker-compose.yml + docker-compose.prod.yml, checked statically and
run natively (real servers, production settings, Redis with a password)."""

import os
import stat
import subprocess
import sys

import httpx
import pytest
import redis
import websockets

from proving_ground.clients import ChatClient, ws_url
from proving_ground.stacks import compose
from proving_ground.stacks.compose import COMPOSE_FILE, PROD_FILE, ROOT
from proving_ground.stacks.docker import copy_repository, write_prod_env
from proving_ground.stacks.native import NativeStack

# As Compose reads the two files; the production env files need not exist for it.
PROJECT = compose.unescape(compose.compose_config(COMPOSE_FILE, PROD_FILE, env_files=False))
SERVICES = PROJECT["services"]
HOST = "chat.example.com"
EXAMPLES = subprocess.run(
    ["git", "ls-files", "*.prod.example"], cwd=ROOT, capture_output=True, text=True, check=True
).stdout.split()
PLACEHOLDER = "generate-me"


def test_compose_validates_the_merged_production_project(prod_copy):
    files = (prod_copy / "docker-compose.yml", prod_copy / "docker-compose.prod.yml")
    django = compose.compose_config(*files)["services"]["django"]
    assert django["build"]["target"] == "production"
    assert django["image"].endswith("-django:production"), "development's image is kept"


def test_no_bind_mounts_in_production():
    for name, spec in SERVICES.items():
        for volume in spec.get("volumes", []):
            assert volume["type"] != "bind", (name, volume)


def test_only_nginx_publishes_a_port():
    published = {name: spec["ports"] for name, spec in SERVICES.items() if spec.get("ports")}
    assert list(published) == ["nginx"]
    (port,) = published["nginx"]
    assert port["published"] == "80"
    assert port["target"] == int(SERVICES["nginx"]["environment"]["NGINX_PORT"])


@pytest.mark.parametrize("name", ["nginx", "django", "mysql", "redis"])
def test_limits_and_log_rotation(name):
    spec = SERVICES[name]
    assert spec["deploy"]["resources"]["limits"]["memory"]
    assert spec["logging"]["options"]["max-size"]


@pytest.mark.parametrize("name", ["nginx", "django", "redis"])
def test_read_only_root_filesystems(name):
    assert SERVICES[name]["read_only"] is True


def test_processes_are_not_root():
    assert SERVICES["nginx"]["user"] == "101:101"
    assert SERVICES["redis"]["user"] == "redis"
    production = (ROOT / "Django/Dockerfile").read_text().split(" AS production")[1]
    assert production.rstrip().endswith("\nUSER ${UID}:${GID}")
    # mysql: the image runs mysqld as its mysql user itself.


def test_production_env_files_are_appended_and_never_committed():
    assert [entry["path"] for entry in SERVICES["django"]["env_file"][-3:]] == [
        str(ROOT / "Django/.env.django.prod"),
        str(ROOT / "MySQL/.env.mysql.prod"),
        str(ROOT / "Redis/.redis.env.prod"),
    ]
    for example in EXAMPLES:
        real = example.removesuffix(".example")
        ignored = subprocess.run(["git", "check-ignore", "-q", real], cwd=ROOT)
        assert ignored.returncode == 0, f"{real} is not ignored by git"
        tracked = subprocess.run(
            ["git", "ls-files", "--error-unmatch", example], cwd=ROOT, capture_output=True
        )
        assert tracked.returncode == 0, f"{example} is not committed"


def test_production_keeps_its_own_database_volume():
    # The development volume's MySQL user has the development password.
    (mysql_data,) = SERVICES["mysql"]["volumes"]
    assert mysql_data["source"] != "mysql-data" and mysql_data["source"] in PROJECT["volumes"]


@pytest.fixture(scope="module")
def prod_copy(tmp_path_factory):
    """The repository's files in a temp dir, with freshly generated production secrets."""
    copy = copy_repository(tmp_path_factory.mktemp("prod") / "repo")
    assert sorted(write_prod_env(copy)) == sorted(e.removesuffix(".example") for e in EXAMPLES)
    return copy


def test_prod_env_fills_every_placeholder_and_keeps_existing_files(prod_copy):
    secrets = set()
    for example in EXAMPLES:
        written = prod_copy / example.removesuffix(".example")
        text = written.read_text()
        assert PLACEHOLDER not in text
        assert stat.S_IMODE(written.stat().st_mode) == 0o600
        for line in text.splitlines():
            if (prod_copy / example).read_text().count(line) == 0:  # a generated value
                secrets.add(line.split("=", 1)[1])
                assert len(line.split("=", 1)[1]) == 96
    placeholders = sum((prod_copy / example).read_text().count(PLACEHOLDER) for example in EXAMPLES)
    assert len(secrets) == placeholders, "each placeholder gets its own random value"
    before = (prod_copy / "Django/.env.django.prod").read_text()
    assert write_prod_env(prod_copy) == []
    assert (prod_copy / "Django/.env.django.prod").read_text() == before


def test_monitoring_beside_production_reads_the_production_secrets(prod_copy):
    files = ("docker-compose.yml", "docker-compose.prod.yml", "docker-compose.monitoring.yml")
    services = compose.compose_config(*(prod_copy / name for name in files))["services"]
    env = {name: spec.get("environment", {}) for name, spec in services.items()}
    assert env["redis-exporter"]["REDIS_PASSWORD"] == env["redis"]["REDIS_PASSWORD"] != ""
    password = env["mysqld-exporter"]["MYSQLD_EXPORTER_PASSWORD"]
    assert password == env["mysql"]["MYSQLD_EXPORTER_PASSWORD"]
    assert PLACEHOLDER not in password and "development" not in password
    assert "development" not in env["grafana"]["GF_SECURITY_ADMIN_PASSWORD"]
    assert env["grafana"]["GF_AUTH_ANONYMOUS_ENABLED"] == "false"
    # The production database volume, with the exporter's user made on first start.
    targets = [volume["target"] for volume in services["mysql"]["volumes"]]
    assert targets == ["/var/lib/mysql", "/docker-entrypoint-initdb.d/exporter-user.sh"]
    assert services["mysql"]["volumes"][0]["source"] == "mysql-data-prod"
    # Only nginx is reachable from other machines; Prometheus and Grafana from this one.
    for name, spec in services.items():
        for port in spec.get("ports", []):
            assert name == "nginx" or port["host_ip"] == "127.0.0.1", (name, port)


# The test client plays the TLS proxy in front of nginx; 127.0.0.2 plays anyone else.
PROXY, CLIENT, STRANGER = "127.0.0.1", "203.0.113.7", "127.0.0.2"


@pytest.fixture(scope="module")
def prod_stack(prod_copy):
    files = (prod_copy / "docker-compose.yml", prod_copy / "docker-compose.prod.yml")
    os.environ["NGINX_REAL_IP_FROM"] = PROXY  # as an operator sets it, in the shell
    try:
        stack = NativeStack(compose_files=files)
    finally:
        del os.environ["NGINX_REAL_IP_FROM"]
    with stack as running:
        yield running


def test_check_deploy_is_clean_with_the_production_environment(prod_stack):
    env = {**prod_stack.django_env(), "PATH": "/usr/bin:/bin"}
    assert env["ENVIRONMENT"] == "production" and env["DEBUG"] == "0"
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=prod_stack.services["django"].build_context(),
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def get(stack, path="/", **headers):
    headers = {"Host": HOST, "X-Forwarded-Proto": "https", **headers}
    return httpx.get(stack.http_url + path, headers=headers)


def test_pages_behind_the_tls_proxy_carry_security_headers(prod_stack):
    response = get(prod_stack)
    assert response.status_code == 200
    assert response.headers["server"] == "nginx"  # no version
    assert "default-src 'self'" in response.headers["content-security-policy"]
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "same-origin"
    assert response.headers["strict-transport-security"].startswith("max-age=")
    assert "secure" in get(prod_stack, "/admin/login/").headers["set-cookie"].lower()


def test_plain_http_is_redirected_to_https(prod_stack):
    response = get(prod_stack, **{"X-Forwarded-Proto": "http"})
    assert response.status_code == 301
    assert response.headers["location"] == f"https://{HOST}/"


def test_unknown_host_and_debug_endpoints_are_refused(prod_stack):
    assert get(prod_stack, Host="attacker.example").status_code == 400
    assert get(prod_stack, "/debug/slow").status_code == 404


def test_nginx_and_django_see_the_client_the_proxy_names_and_nobody_else(prod_stack):
    # The client forged a first address; the proxy appended the one it saw.
    forged = {"X-Forwarded-For": f"198.51.100.66, {CLIENT}"}
    assert get(prod_stack, "/?via=proxy", **forged).status_code == 200
    stranger = httpx.HTTPTransport(local_address=STRANGER)
    with httpx.Client(transport=stranger) as direct:
        headers = {"Host": HOST, "X-Forwarded-Proto": "https", **forged}
        assert direct.get(prod_stack.http_url + "/?via=stranger", headers=headers).is_success
    nginx_log = (prod_stack.logs / "nginx-access.log").read_text()
    django_log = prod_stack.log_tail("django", 200)
    for log in (nginx_log, django_log):
        assert client_logged(log, "via=proxy") == CLIENT
        assert client_logged(log, "via=stranger") == STRANGER


def client_logged(log: str, marker: str) -> str:
    """Which of the addresses in play the access log line for `marker` names."""
    (line,) = [line for line in log.splitlines() if marker in line]
    (address,) = [a for a in (PROXY, CLIENT, STRANGER, "198.51.100.66") if a in line]
    return address


async def test_probes_show_no_internals_and_the_debug_endpoints_are_gone(prod_stack):
    assert get(prod_stack, "/healthz").json() == {"status": "ok"}
    assert get(prod_stack, "/readyz").json() == {"status": "ok", "failing": []}
    for path in ("/api/status", "/api/ping"):
        assert get(prod_stack, path).status_code == 404, path
    page = get(prod_stack).text
    assert "/talk/lobby/" in page and "initial-status" not in page
    with pytest.raises(websockets.InvalidStatus):
        echo = ws_url(prod_stack.http_url, "/ws/echo/")
        await websockets.connect(echo, origin=f"https://{HOST}", open_timeout=10)


def test_large_bodies_are_refused_by_nginx(prod_stack):
    response = httpx.post(
        prod_stack.http_url + "/",
        content=b"x" * (2 * 1024 * 1024),
        headers={"Host": HOST, "X-Forwarded-Proto": "https"},
    )
    assert response.status_code == 413


async def test_chat_works_with_the_redis_password_and_redis_refuses_without(prod_stack):
    client = ChatClient(prod_stack.http_url, "prod-room", "ops", origin=f"https://{HOST}")
    await client.connect()
    stored = await client.say("hello from production")
    assert stored["id"]
    await client.close()
    anonymous = redis.Redis(host="127.0.0.1", port=prod_stack.redis_port)
    with pytest.raises(redis.AuthenticationError):
        anonymous.ping()
    anonymous.close()


def test_production_static_volume_is_static_root():
    # An anchor cannot cross files, so the production file restates the path: hold it equal.
    static_root = SERVICES["django"]["environment"]["STATIC_ROOT"]
    for name in ("django", "nginx"):
        targets = [v["target"] for v in SERVICES[name]["volumes"] if v["source"] == "static"]
        assert targets == [static_root], (name, targets)
