"""Whole-stack tests: the real servers, started natively from the Compose stack's files.

A missing server binary fails the session with the Debian package to install: these
tests never skip.
"""

import json
import os
from pathlib import Path

import pytest
import websockets

from proving_ground.clients import ws_url
from proving_ground.stacks.compose import ROOT
from proving_ground.stacks.native import NativeStack

OUTPUT = Path(os.environ.get("TEST_OUTPUT", ROOT / "test-output"))


@pytest.fixture(scope="session")
def stack():
    # Two workers at least, so cross-process delivery through Redis is observable.
    # TEST_CHANNEL_LAYER runs the suite on another layer than the env file's (CHANNEL_LAYER).
    env = {"WEB_CONCURRENCY": "2"}
    if layer := os.environ.get("TEST_CHANNEL_LAYER"):
        env["CHANNEL_LAYER"] = layer
    with NativeStack(django_env=env) as running:
        yield running


@pytest.fixture(scope="session")
def output_dir() -> Path:
    OUTPUT.mkdir(parents=True, exist_ok=True)
    return OUTPUT


async def open_socket(stack, path: str = "/ws/echo/", base: str | None = None):
    """A WebSocket through nginx (by default) with the page's own Origin; returns the
    socket and its first frame."""
    base = base or stack.http_url
    socket = await websockets.connect(ws_url(base, path), origin=stack.http_url, open_timeout=10)
    return socket, json.loads(await socket.recv())


async def receive_until(socket, predicate, timeout: float = 5.0) -> dict:
    """The first frame matching `predicate`; frames meant for other tests are skipped."""
    import asyncio

    async with asyncio.timeout(timeout):
        while True:
            frame = json.loads(await socket.recv())
            if predicate(frame):
                return frame
