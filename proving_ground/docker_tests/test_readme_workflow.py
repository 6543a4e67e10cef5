"""The README's commands for Docker users, in the order a reader follows them, on a copy of
the repository owned by uid 1001: neither the image's user (1000) nor root. Nothing here
needs Python or Poetry on the host; the one host command besides Docker is `sh`.

One test, because each step starts from where the previous one left the reader."""

import os

import httpx
import pytest

from proving_ground.clients import ChatClient
from proving_ground.stacks.docker import DockerStack, allow_host

OWNER = (1001, 1001)
PROD = ["docker-compose.yml", "docker-compose.prod.yml"]
HOST = "chat.example.com"


@pytest.fixture(scope="module")
def reader():
    stack = DockerStack(owner=OWNER)
    try:
        yield stack
    finally:
        stack.down()


def owners(stack, *names):
    return {name: os.stat(stack.dir / name).st_uid for name in names}


@pytest.mark.timeout(1500)
async def test_a_reader_follows_the_readme_from_up_to_production(reader):
    django_files = ("Django/pyproject.toml", "Django/poetry.lock")

    # Quick start: `docker compose up -d`, then both URLs, and `ps` shows all healthy.
    reader.compose("up", "-d", "--wait", "--wait-timeout", "300")
    for url in (reader.http_url, reader.django_url):
        assert httpx.get(url + "/").status_code == 200
    assert set(reader.health().values()) == {"healthy"}

    # `docker compose exec django poetry add PKG`: the files change on the host, keep
    # their owner, and the package imports at once.
    before = {name: (reader.dir / name).read_text() for name in django_files}
    reader.exec("django", "poetry", "add", "six")
    assert owners(reader, *django_files) == dict.fromkeys(django_files, OWNER[0])
    for name in django_files:
        after = (reader.dir / name).read_text()
        assert after != before[name] and "six" in after, f"{name} not updated"
    reader.exec("django", "python", "-c", "import six")

    # `docker compose restart django`: still there.
    reader.compose("restart", "django")
    reader.wait_healthy("django")
    reader.exec("django", "python", "-c", "import six")

    # `docker compose build` bakes it into the image: a new container has it.
    old_container = reader.container("django")["Id"]
    reader.compose("build")
    reader.compose("up", "-d", "--wait", "--wait-timeout", "300")
    assert reader.container("django")["Id"] != old_container
    reader.exec("django", "python", "-c", "import six")

    # `docker compose logs django`: Gunicorn with Uvicorn workers, and the requests.
    httpx.get(reader.http_url + "/")
    logs = reader.compose("logs", "django").stdout
    assert "Booting worker" in logs and '"GET / HTTP/1.1" 200' in logs, logs[-3000:]

    # The book's check in `docker compose exec django python manage.py shell`.
    shell = reader.exec(
        "django",
        "python",
        "manage.py",
        "shell",
        input="import channels.layers\nprint(channels.layers.get_channel_layer())\n",
    )
    assert "<realtime.fanout.FanoutChannelLayer object at " in shell.stdout

    # Production, on the same machine right after development, as the README says:
    # `sh prod-env.sh` (run here in a container that has no Python, as the reader's uid),
    # set ALLOWED_HOSTS, then `up -d --build` with both files.
    no_python = reader.run_tool("redis:7", OWNER, "sh", "-c", "command -v python3 perl || :")
    assert no_python.stdout.strip() == ""
    written = reader.run_tool("redis:7", OWNER, "sh", "prod-env.sh")
    examples = list(reader.dir.glob("*/.*.prod.example"))
    assert written.stdout.count("wrote ") == len(examples) >= 3, written.stdout
    allow_host(reader.dir, HOST)
    reader.compose("up", "-d", "--build", "--wait", "--wait-timeout", "300", files=PROD)
    headers = {"Host": HOST, "X-Forwarded-Proto": "https"}
    page = httpx.get(reader.http_url + "/", headers=headers)
    assert page.status_code == 200 and page.headers["server"] == "nginx"
    client = ChatClient(reader.http_url, "launch", "ops", origin=f"https://{HOST}")
    await client.connect()
    assert (await client.say("production, right after development"))["id"]
    await client.close()
