"""The README's "Write your own consumer", followed as written: its commands, the files it
shows and the edits it words, in a copy of the repository; then the new app's unit test
(docs/realtime.md's "Testing a consumer") and its socket, answering through nginx on the
real stack."""

import json
import os
import re
import subprocess
import sys

import pytest
import websockets

from proving_ground.clients import ws_url
from proving_ground.clients.site import SiteUser
from proving_ground.stacks.compose import ROOT
from proving_ground.stacks.docker import copy_repository
from proving_ground.stacks.native import NativeStack

SECTION = re.compile(r"^## Write your own consumer\n(.*?)^## ", re.S | re.M)
TESTING = re.compile(r"^## Testing a consumer\n(.*?)^## ", re.S | re.M)
TITLED_BLOCK = re.compile(r'```python title="([^"]+)"\n(.*?)```', re.S)
# "import its routes in `routing.py` (`from ... import ... as name`) and add `*name,`"
ROUTES = re.compile(r"\(`(from \w+\.routing import\s+websocket_urlpatterns as (\w+))`\)")


def add_routes(routing, instruction: str) -> None:
    """The project's routing.py with the import and the list entry an instruction words."""
    statement, name = ROUTES.search(instruction).groups()
    statement = " ".join(statement.split())  # the README wraps it over two lines
    assert f"`*{name},`" in instruction
    text = routing.read_text()
    (last_import,) = [line for line in text.splitlines() if line.startswith("from talk.")]
    text = text.replace(last_import, f"{last_import}\n{statement}", 1)
    routing.write_text(text.replace("\n]\n", f"\n    *{name},\n]\n", 1))


def dedent_block(text: str) -> str:
    """A block as the README indents it inside a numbered step, at column 0."""
    lines = text.splitlines()
    indent = min(len(line) - len(line.lstrip()) for line in lines if line.strip())
    return "\n".join(line[indent:] for line in lines) + "\n"


@pytest.fixture(scope="module")
def readme_steps() -> str:
    (section,) = SECTION.findall((ROOT / "README.md").read_text())
    return section


@pytest.fixture(scope="module")
def testing_doc() -> str:
    (section,) = TESTING.findall((ROOT / "docs/realtime.md").read_text())
    return section


@pytest.fixture(scope="module")
def followed(readme_steps, testing_doc, tmp_path_factory):
    """A copy of the repository after the README's steps."""
    repo = copy_repository(tmp_path_factory.mktemp("reader") / "repo")
    django = repo / "Django"
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings"}
    # Step 1, natively: the container runs the same manage.py.
    startapp = re.search(r"python manage.py (startapp \w+)", readme_steps).group(1).split()
    subprocess.run([sys.executable, "manage.py", *startapp], cwd=django, env=env, check=True)
    # Step 1's settings line, after "talk",.
    app_line = re.search(r'add `("\w+",)` to\s+`INSTALLED_APPS`', readme_steps).group(1)
    settings = django / "channels_tutorial/settings.py"
    text = settings.read_text()
    assert '    "talk",\n' in text
    settings.write_text(text.replace('    "talk",\n', f'    "talk",\n    {app_line}\n', 1))
    # Step 2's files, step 3's routes; the test and the empty __init__.py the doc asks for.
    blocks = TITLED_BLOCK.findall(readme_steps) + TITLED_BLOCK.findall(testing_doc)
    assert len(blocks) == 3, blocks
    for path, body in blocks:
        (repo / path).parent.mkdir(parents=True, exist_ok=True)
        (repo / path).write_text(dedent_block(body))
    add_routes(django / "channels_tutorial/routing.py", readme_steps)
    init = re.search(r"empty\s+`(Django/tests/\w+/__init__.py)`", testing_doc).group(1)
    (repo / init).touch()
    return repo


def test_the_new_apps_unit_test_passes(followed, testing_doc):
    # The doc's command: `docker compose run --rm django pytest tests/shout`.
    target = re.search(r"django pytest (tests/\w+)", testing_doc).group(1)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", target],
        cwd=followed / "Django",
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout


async def test_the_new_socket_answers_through_nginx_and_a_save_reloads_it(followed, readme_steps):
    # Step 3: the socket the README's browser snippet opens, on the stack from the copy.
    path = re.search(r'new WebSocket\("ws://localhost(/ws/\w+/)"\)', readme_steps).group(1)
    sent = re.search(r"ws.send\(JSON.stringify\((\{.*?\})\)\)", readme_steps).group(1)
    expected = re.search(r"console.log\(e.data\);\s+// (\{.*?\})", readme_steps).group(1)
    frame = json.loads(re.sub(r"(\w+):", r'"\1":', sent))

    async def answer(stack) -> dict:
        async with websockets.connect(
            ws_url(stack.http_url, path),
            origin=stack.http_url,
            additional_headers=signed_in.socket_headers,
            open_timeout=10,
        ) as socket:
            await socket.send(json.dumps(frame))
            return json.loads(await socket.recv())

    with NativeStack(compose_files=(followed / "docker-compose.yml",)) as stack:
        # "Sign up ... (as `ann`, say)": the browser's session is that user's.
        assert "/accounts/signup/" in readme_steps
        signed_in = SiteUser(stack.http_url).sign_up(json.loads(expected)["by"])
        assert await answer(stack) == json.loads(expected)
        # "Save, and the workers reload": an edit is served without a restart.
        assert "Save, and the workers reload" in " ".join(readme_steps.split())
        consumer = followed / "Django/shout/consumers.py"
        consumer.write_text(consumer.read_text().replace(".upper()", ".lower()"))
        stack.reloaded(stack.gunicorn_workers())
        assert await answer(stack) == {**json.loads(expected), "text": frame["text"].lower()}
