"""The book's stack alone: this project without the realtime base (realtime/) and the
apps built on it (talk/, accounts/), made the way the README's "The book's stack alone"
says, and the checks that it still serves what chapter 2 builds."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import httpx
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from proving_ground.clients import ws_url
from proving_ground.stacks.compose import ROOT

SECTION = re.compile(r"^## The book's stack alone\n(.*?)^## ", re.S | re.M)
SHELL_BLOCK = re.compile(r"```sh\n(.*?)```", re.S)
# What goes: the folders the README's commands delete.
REMOVED = (
    "Django/realtime",
    "Django/talk",
    "Django/accounts",
    "Django/compat/channels.py",
    "Django/compat/channels_redis.py",
    "Django/compat/redis.py",
)


def readme_commands(readme: Path = ROOT / "README.md") -> str:
    """The shell block of the README's section, as a reader would paste it."""
    (section,) = SECTION.findall(readme.read_text())
    (commands,) = SHELL_BLOCK.findall(section)
    return commands


def strip_to_the_book(root: Path) -> None:
    """Run the README's commands in a copy of the project at `root`."""
    result = subprocess.run(
        ["sh", "-eu", "-c", readme_commands()], cwd=root, capture_output=True, text=True
    )
    if result.returncode:
        raise RuntimeError(f"the README's commands failed in {root}:\n{result.stderr}")
    left = [folder for folder in REMOVED if (root / folder).exists()]
    if left:
        raise RuntimeError(f"the README's commands left {left} in {root}")


def assert_serves_the_book(http_url: str, django_url: str) -> None:
    """Health probes, the status page's JSON all ok, the echo socket through nginx, and
    nothing of what went: its pages and sockets are 404."""
    for path in ("/healthz", "/readyz"):
        response = httpx.get(django_url + path, timeout=10)
        assert response.status_code == 200, (path, response.text)
    for base in (http_url, django_url):
        status = httpx.get(base + "/api/status", timeout=10).json()
        assert status["ok"], status
        assert status["checks"]["channel_layer"]["detail"]["backend"].startswith(
            "channels_redis.core."
        ), status["checks"]["channel_layer"]
        assert httpx.get(base + "/", timeout=10).status_code == 200
    for path in ("/talk/", "/accounts/login/", "/api/tickets"):
        assert httpx.get(http_url + path, timeout=10).status_code == 404, path
    url = ws_url(http_url, "/ws/echo/")
    with connect(url, origin=http_url) as one, connect(url, origin=http_url) as two:
        for socket in (one, two):
            assert json.loads(socket.recv(timeout=10))["type"] == "hello"
        one.send(json.dumps({"type": "echo", "text": "hello, book"}))
        assert json.loads(one.recv(timeout=10))["text"] == "hello, book"
        one.send(json.dumps({"type": "broadcast", "text": "to all"}))
        for socket in (one, two):
            assert json.loads(socket.recv(timeout=10))["text"] == "to all"
    try:
        connect(ws_url(http_url, "/ws/talk/lobby/"), origin=http_url, open_timeout=10)
    except InvalidStatus as refused:
        assert refused.response.status_code == 404
    else:
        raise AssertionError("/ws/talk/ still answers")


def assert_status_page_green(page, base: str) -> None:
    """The status page in a real browser: every check green, no link to what went."""
    from playwright.sync_api import expect

    page.goto(base + "/")
    checks = page.locator("#checks tr.check")
    expect(page.locator("#checks tr.check.ok")).to_have_count(checks.count())
    assert checks.count() == 7
    expect(page.locator("[data-check=websocket] .value")).to_contain_text("open through")
    expect(page.locator("[data-check=figures] .value")).to_contain_text("sockets open")
    assert page.locator("a[href^='/talk/'], a[href^='/accounts/']").count() == 0
    assert page.errors == []
