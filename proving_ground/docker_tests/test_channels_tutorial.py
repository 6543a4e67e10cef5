"""The official Channels tutorial, parts 1 to 3, followed as written on the development
stack in containers, as a reader goes on from the book: `startapp chat` in the django
container, the tutorial's files (channels_tutorial/, copied from its docs) saved in its
order, and the three edits the README's "Then the Channels tutorial" words instead of the
tutorial's own to `mysite`. Each step is checked the way the tutorial checks it, but
through nginx, and its consumers with two clients held on different Uvicorn workers.

One test, because each step starts where the previous one left the reader."""

import asyncio
import json
import re
import shutil
from pathlib import Path

import httpx
import pytest
import websockets

from proving_ground.clients import one_per_worker, ws_url
from proving_ground.stacks.compose import ROOT
from proving_ground.stacks.docker import DockerStack
from proving_ground.tests.test_readme_consumer import add_routes

TUTORIAL = Path(__file__).parent / "channels_tutorial"
SECTION = re.compile(r"^## Then the Channels tutorial\n(.*?)^## ", re.S | re.M)
ROOM = "lobby"  # the tutorial's room


@pytest.fixture(scope="module")
def reader():
    with DockerStack() as stack:
        yield stack


@pytest.fixture(scope="module")
def readme() -> str:
    (section,) = SECTION.findall((ROOT / "README.md").read_text())
    return section


def save(stack: DockerStack, step: str) -> None:
    """The tutorial's files of one step, saved into the stack's Django/ folder."""
    folder = TUTORIAL / step
    for source in sorted(folder.rglob("*")):
        if source.is_file():
            target = stack.dir / "Django" / source.relative_to(folder)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(source.read_text())


def edit(path: Path, after: str, line: str) -> None:
    """Insert `line` (indented like `after`) below the line that holds `after`."""
    text = path.read_text()
    (anchor,) = [found for found in text.splitlines(keepends=True) if after in found]
    indent = anchor[: len(anchor) - len(anchor.lstrip())]
    path.write_text(text.replace(anchor, anchor + indent + line + "\n", 1))


def page(stack: DockerStack, path: str) -> str:
    response = httpx.get(stack.http_url + path)
    assert response.status_code == 200, (path, response.status_code)
    assert response.headers["server"].startswith("nginx")
    return response.text


async def open_room(stack: DockerStack):
    return await websockets.connect(
        ws_url(stack.http_url, f"/ws/chat/{ROOM}/"), origin=stack.http_url, open_timeout=10
    )


async def one_socket_per_worker(stack: DockerStack, workers: list[int]) -> list:
    """Sockets to the tutorial's room through nginx until each worker holds one. The
    tutorial's frames do not say which worker sent them: the worker whose connections
    on Django's port grew by one took the socket (retried while a health check's passing
    connection blurs the count)."""

    async def connect():
        for _ in range(5):
            before = stack.worker_connections()
            socket = await open_room(stack)
            after = stack.worker_connections()
            gained = [pid for pid, held in after.items() if held > before.get(pid, 0)]
            if len(gained) == 1:
                return socket, gained[0]
            await socket.close()
        raise AssertionError(f"no one worker took the socket: {before} -> {after}")

    chosen, spares = await one_per_worker(workers, connect)
    for socket in spares:
        await socket.close()
    return list(chosen.values())


async def hear_each_other(sockets) -> None:
    """What the tutorial checks in two browser tabs: a message typed in either reaches
    both, here from sockets on different workers (through the channel layer)."""
    for n, sender in enumerate(sockets):
        text = f"hello from socket {n}"
        await sender.send(json.dumps({"message": text}))
        for socket in sockets:
            frame = await asyncio.wait_for(socket.recv(), 10)
            assert json.loads(frame) == {"message": text}
    for socket in sockets:
        await socket.close()


@pytest.mark.timeout(900)
async def test_a_reader_follows_the_channels_tutorial_parts_1_to_3(reader, readme):
    django = reader.dir / "Django"
    chat = django / "chat"

    # Part 1: `python3 manage.py startapp chat`, in the container: the name is free.
    reader.exec("django", "python", "manage.py", "startapp", "chat")
    # "remove all other files from the chat directory"
    for name in ("admin.py", "apps.py", "models.py", "tests.py"):
        (chat / name).unlink()
    shutil.rmtree(chat / "migrations")
    assert sorted(path.name for path in chat.iterdir()) == ["__init__.py", "views.py"]
    save(reader, "part1")
    # The tutorial's settings.py and urls.py edits, as the README words them here.
    app = re.search(r'add only\s+`("chat",)` to `INSTALLED_APPS`, after `("talk",)`', readme)
    url = re.search(r'`(path\("chat/", include\("chat\.urls"\)\),)`', readme).group(1)
    workers = reader.gunicorn_workers()
    edit(django / "channels_tutorial/settings.py", app.group(2), app.group(1))
    edit(django / "channels_tutorial/urls.py", 'path("talk/"', url)
    workers = reader.reloaded(workers)
    # "you should see the text 'What chat room would you like to enter?'"
    assert "What chat room would you like to enter?" in page(reader, "/chat/")

    # Part 2: the room page, and the consumer that echoes, routed as the README says
    # (the tutorial's asgi.py is the stack's already).
    save(reader, "part2")
    add_routes(django / "channels_tutorial/routing.py", readme)
    workers = reader.reloaded(workers)
    room = page(reader, f"/chat/{ROOM}/")
    assert f'<script id="room-name" type="application/json">"{ROOM}"</script>' in room
    socket = await open_room(reader)
    await socket.send(json.dumps({"message": "hello"}))
    assert json.loads(await asyncio.wait_for(socket.recv(), 10)) == {"message": "hello"}
    await socket.close()

    # The tutorial's check that the channel layer reaches Redis, in `manage.py shell`.
    shell = reader.exec(
        "django",
        "python",
        "manage.py",
        "shell",
        input=(
            "import channels.layers\n"
            "channel_layer = channels.layers.get_channel_layer()\n"
            "from asgiref.sync import async_to_sync\n"
            "async_to_sync(channel_layer.send)('test_channel', {'type': 'hello'})\n"
            "print(async_to_sync(channel_layer.receive)('test_channel'))\n"
        ),
    )
    assert "{'type': 'hello'}" in shell.stdout, shell.stdout + shell.stderr

    # Part 2 with the channel layer: the synchronous consumer (async_to_sync) in a group.
    save(reader, "part2-channel-layer")
    workers = reader.reloaded(workers)
    await hear_each_other(await one_socket_per_worker(reader, workers))

    # Part 3: the same consumer, asynchronous.
    save(reader, "part3")
    workers = reader.reloaded(workers)
    assert "AsyncWebsocketConsumer" in (chat / "consumers.py").read_text()
    await hear_each_other(await one_socket_per_worker(reader, workers))

    # The stack's own example and pages are where they were.
    assert "talk.js" in page(reader, f"/talk/{ROOM}/")
    logs = reader.compose("logs", "django").stdout
    assert "Traceback" not in logs, logs[-3000:]
