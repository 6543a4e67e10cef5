"""Chromium on the HTTPS stack (docker-compose.tls.yml, certbot at Pebble): it trusts
Pebble's root as a browser trusts Let's Encrypt's, opens https://DOMAIN/ (the name mapped
to 127.0.0.1), and two pages chat over wss://. A module of its own: Playwright's sync API
must not share a module with asyncio tests."""

import shutil
import subprocess
import uuid

import pytest
from playwright.sync_api import expect

from proving_ground.stacks.tls import DOMAIN
from proving_ground.tests.conftest import output_dir  # noqa: F401 - a fixture
from proving_ground.tests.test_browser import CHROMIUM, FLAGS, playwright, send  # noqa: F401


@pytest.fixture
def open_trusting_window(playwright, tls_stack, tmp_path):  # noqa: F811 - the fixture
    """A browser whose only trusted root is Pebble's, in a profile (and NSS database,
    under its own HOME) of its own."""
    certutil = shutil.which("certutil")
    if certutil is None:
        pytest.fail("certutil is not installed: sudo apt-get install libnss3-tools")
    contexts = []

    def open_window():
        home = tmp_path / f"home-{len(contexts)}"
        nssdb = home / ".pki/nssdb"
        nssdb.mkdir(parents=True)
        root = home / "pebble-root.pem"
        root.write_text(tls_stack.issuing_root())
        for command in (
            ["-N", "--empty-password"],
            ["-A", "-n", "pebble", "-t", "C,,", "-i", str(root)],
        ):
            subprocess.run([certutil, "-d", f"sql:{nssdb}", *command], check=True)
        context = playwright.chromium.launch_persistent_context(
            str(home / "profile"),
            executable_path=str(CHROMIUM),
            args=[*FLAGS, f"--host-resolver-rules=MAP {DOMAIN} 127.0.0.1"],
            env={"HOME": str(home)},
            headless=True,
        )
        contexts.append(context)
        page = context.pages[0] if context.pages else context.new_page()
        page.errors = []
        page.on("pageerror", lambda error: page.errors.append(str(error)))
        return page

    yield open_window
    for context in contexts:
        context.close()


def test_two_pages_chat_over_wss_on_the_domain(tls_stack, open_trusting_window, output_dir):  # noqa: F811
    url = f"{tls_stack.https_url}/talk/tls-{uuid.uuid4().hex[:8]}/"
    alice, bob = open_trusting_window(), open_trusting_window()
    for page in (alice, bob):
        page.goto(url)
        expect(page.locator("#state")).to_have_attribute("data-state", "open")
        assert page.evaluate("location.protocol") == "https:"
    send(alice, "alice", "over wss 🔒")
    expect(bob.locator("#messages li .text")).to_have_text(["over wss 🔒"])
    send(bob, "bob", "received")
    expect(alice.locator("#messages li .text").last).to_have_text("received")
    assert alice.errors == [] and bob.errors == []
    bob.screenshot(path=str(output_dir / "chat-https.png"))
