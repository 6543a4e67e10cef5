"""Real browsers (Debian's chromium driven by Playwright) through nginx."""

import contextlib
import os
import re
import signal
import uuid
from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright
from websockets.sync.client import connect

from proving_ground.clients import ws_url
from proving_ground.faults.limits import setting
from proving_ground.stacks.native import NativeStack

CHROMIUM = Path("/usr/bin/chromium")
# Headless on a machine with no network but loopback: nothing phones home.
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
XSS = ["<script>window.__xss = 1</script>", '<img src=x onerror="window.__xss = 1">']


@pytest.fixture(scope="module")
def playwright():
    if not CHROMIUM.exists():
        pytest.fail("chromium is not installed: sudo apt-get install chromium")
    with sync_playwright() as running:
        yield running


@pytest.fixture
def open_window(playwright, tmp_path):
    """A separate browser (own profile, as a second person would have) per call."""
    contexts = []

    def open_window():
        profile = tmp_path / f"profile-{len(contexts)}"
        context = playwright.chromium.launch_persistent_context(
            str(profile),
            executable_path=str(CHROMIUM),
            args=FLAGS,
            headless=True,
            viewport={"width": 1100, "height": 760},
        )
        contexts.append(context)
        page = context.pages[0] if context.pages else context.new_page()
        page.errors = []
        page.on("pageerror", lambda error: page.errors.append(str(error)))
        # Content Security Policy violations are reported on the console.
        page.on(
            "console",
            lambda message: (
                "Content Security Policy" in message.text and page.errors.append(message.text)
            ),
        )
        return page

    yield open_window
    for context in contexts:
        context.close()


def send(page, nickname: str, text: str) -> None:
    page.fill("#nickname", nickname)
    page.fill("#text", text)
    page.press("#text", "Enter")


def test_two_windows_chat_history_survives_reload_and_html_stays_text(
    stack, open_window, output_dir
):
    url = f"{stack.http_url}/talk/browser-{uuid.uuid4().hex[:8]}/"
    alice, bob = open_window(), open_window()
    for page in (alice, bob):
        page.goto(url)
        expect(page.locator("#state")).to_have_attribute("data-state", "open")

    send(alice, "alice", "こんにちは from Alice 🍣")
    expect(bob.locator("#messages li .text")).to_have_text(["こんにちは from Alice 🍣"])

    bob.reload()
    expect(bob.locator("#state")).to_have_attribute("data-state", "open")
    expect(bob.locator("#messages li .text")).to_have_text(["こんにちは from Alice 🍣"])

    for text in XSS:
        send(alice, "mallory", text)
    expected = ["こんにちは from Alice 🍣", *XSS]
    for page in (alice, bob):
        expect(page.locator("#messages li .text")).to_have_text(expected)
        assert page.locator("#messages script, #messages img").count() == 0
        assert page.evaluate("window.__xss") is None
        assert page.errors == []

    send(bob, "bob", "Hi Alice! 👋")
    expect(alice.locator("#messages li .text").last).to_have_text("Hi Alice! 👋")
    bob.screenshot(path=str(output_dir / "chat.png"))


# Through nginx, and on Django's own port for debugging, which must show the same page:
# there WhiteNoise serves the CSS and scripts nginx serves on the front door.
@pytest.mark.parametrize(
    ("address", "hop"),
    [("http_url", "through nginx"), ("django_url", "directly to Gunicorn")],
)
def test_landing_page_shows_every_check_green(stack, open_window, output_dir, address, hop):
    page = open_window()
    page.goto(getattr(stack, address) + "/")
    checks = page.locator("#checks tr.check")
    expect(page.locator("#checks tr.check.ok")).to_have_count(checks.count())
    expect(page.locator("[data-check=websocket] .value")).to_contain_text("open through")
    expect(page.locator("[data-check=request] .value")).to_contain_text(hop)
    # The live figures: at least this page's echo socket (the realtime base's) is open.
    expect(page.locator("[data-check=figures] .value")).to_have_text(
        re.compile(r"^([1-9]|\d\d+) sockets open · [\d.]+ messages/s delivered · ")
    )
    assert checks.count() == 7
    # site.css loaded: its font, not the browser's default.
    assert "system-ui" in page.evaluate("getComputedStyle(document.body).fontFamily")
    assert page.errors == []
    if address == "http_url":
        page.screenshot(path=str(output_dir / "landing.png"), full_page=True)


def one_room_on_both_addresses(stack, open_window, prefix: str):
    """Alice's page in a new room through nginx, Bob's through Django's own port; both
    connected."""
    room = f"{prefix}-{uuid.uuid4().hex[:8]}"
    alice, bob = open_window(), open_window()
    alice.goto(f"{stack.http_url}/talk/{room}/")
    bob.goto(f"{stack.django_url}/talk/{room}/")
    for page in (alice, bob):
        expect(page.locator("#state")).to_have_attribute("data-state", "open")
    return alice, bob


def test_a_message_sent_on_djangos_own_port_reaches_a_page_through_nginx(stack, open_window):
    alice, bob = one_room_on_both_addresses(stack, open_window, "ports")
    send(bob, "bob", "sent on port 8080")
    expect(alice.locator("#messages li .text")).to_have_text(["sent on port 8080"])
    send(alice, "alice", "sent through nginx")
    expect(bob.locator("#messages li .text")).to_have_text(
        ["sent on port 8080", "sent through nginx"]
    )
    assert alice.errors == [] and bob.errors == []


def test_page_reconnects_with_backoff_when_its_worker_dies(stack, open_window):
    page = open_window()
    page.goto(f"{stack.http_url}/talk/reconnect-{uuid.uuid4().hex[:8]}/")
    state = page.locator("#state")
    expect(state).to_have_attribute("data-state", "open")
    worker = int(state.get_attribute("data-worker"))

    os.kill(worker, signal.SIGKILL)  # Gunicorn's master starts a replacement
    expect(state).to_have_attribute("data-state", "reconnecting")
    expect(state).to_contain_text("retrying in")
    expect(state).to_have_attribute("data-state", "open", timeout=20_000)

    send(page, "carol", "back again")
    expect(page.locator("#messages li .text")).to_have_text(["back again"])
    assert page.errors == []


def test_pages_pass_the_content_security_policy(stack, open_window):
    page = open_window()
    for path in ["/", "/talk/", "/talk/csp-check/", "/admin/login/"]:
        response = page.goto(stack.http_url + path)
        assert "default-src 'self'" in response.headers["content-security-policy"]
        page.wait_for_load_state("networkidle")
    expect(page.locator("#id_username")).to_be_visible()
    assert page.errors == [], page.errors


def cut_off_while_the_other_talks(stack, open_window, count: int):
    """Alice's page goes through nginx, Bob's through Django's own port. After one
    message both see, nginx stops: Alice is cut off while Bob sends `count` more. Returns
    both pages, the texts Bob sent, and nginx started again."""
    alice, bob = one_room_on_both_addresses(stack, open_window, "away")
    send(bob, "bob", "before")
    expect(alice.locator("#messages li .text")).to_have_text(["before"])
    texts = ["before"] + [f"while away {n}" for n in range(count)]
    stack.stop_service("nginx")
    try:
        expect(alice.locator("#state")).to_have_attribute("data-state", "reconnecting")
        for n, text in enumerate(texts[1:], start=2):
            send(bob, "bob", text)
            expect(bob.locator("#messages li")).to_have_count(n)
            bob.wait_for_timeout(110)  # under the per-socket rate limit
    finally:
        stack.start_service("nginx")
    expect(alice.locator("#state")).to_have_attribute("data-state", "open", timeout=20_000)
    return alice, bob, texts


def test_a_page_that_lost_its_connection_gets_every_message_once_in_order(stack, open_window):
    # More messages than a new page's history holds (50): all come back by the resume.
    alice, bob, texts = cut_off_while_the_other_talks(stack, open_window, 70)
    expect(alice.locator("#messages li .text")).to_have_text(texts, timeout=10_000)
    assert alice.locator("#messages li.gap").count() == 0
    assert alice.errors == [] and bob.errors == []


def test_a_page_away_for_longer_than_a_resume_replays_marks_the_gap(open_window):
    # Resumes replay at most 5 messages here: away for 60, the page gets the latest 50
    # and marks where the others would have been.
    with NativeStack(django_env={"WEB_CONCURRENCY": "1", "REALTIME_RESUME_LIMIT": "5"}) as stack:
        alice, bob, texts = cut_off_while_the_other_talks(stack, open_window, 60)
        items = alice.locator("#messages li")
        expect(items).to_have_count(52)  # "before", the marker, the latest 50
        expect(items.nth(1)).to_have_class("gap")
        expect(alice.locator("#messages li .text")).to_have_text(["before", *texts[11:]])
        assert alice.errors == [] and bob.errors == []


# Through nginx, and on Django's own port: sign-up is a form of Django's with its CSRF
# cookie, and the session it starts is the socket's user on either address.
@pytest.mark.parametrize("address", ["http_url", "django_url"])
def test_a_signed_up_user_chats_under_their_name_beside_a_guest(
    stack, open_window, output_dir, address
):
    base, room = getattr(stack, address), f"signed-{uuid.uuid4().hex[:8]}"
    name = f"ann-{uuid.uuid4().hex[:6]}"
    ann, guest = open_window(), open_window()
    ann.goto(f"{base}/accounts/signup/?next=/talk/{room}/")
    ann.fill("#id_username", name)
    ann.fill("#id_password1", "correct horse battery staple 7")
    ann.fill("#id_password2", "correct horse battery staple 7")
    ann.click("main button")
    expect(ann).to_have_url(f"{base}/talk/{room}/")
    expect(ann.locator("#signed-in")).to_have_text(name)
    assert ann.locator("#nickname").count() == 0  # the server names her
    guest.goto(f"{base}/talk/{room}/")
    for page in (ann, guest):
        expect(page.locator("#state")).to_have_attribute("data-state", "open")
        # Who is here, the same on both pages whichever worker each is on.
        expect(page.locator("#presence")).to_have_text(f"Here now: {name}, 1 guest")
    ann.fill("#text", "signed in")
    ann.press("#text", "Enter")
    send(guest, name, "me, honestly")
    for page in (ann, guest):
        expect(page.locator("#messages li strong")).to_have_text([name, f"{name} (guest)"])
    assert ann.errors == [] and guest.errors == []
    if address == "http_url":
        guest.screenshot(path=str(output_dir / "signed-in.png"))
    ann.close()
    expect(guest.locator("#presence")).to_have_text("Here now: 1 guest")


def test_a_user_past_the_socket_cap_is_told_to_close_a_tab(stack, open_window):
    base, room = stack.http_url, f"capped-{uuid.uuid4().hex[:8]}"
    page = open_window()
    page.goto(f"{base}/accounts/signup/?next=/talk/{room}/")
    page.fill("#id_username", f"tabs-{uuid.uuid4().hex[:6]}")
    page.fill("#id_password1", "correct horse battery staple 7")
    page.fill("#id_password2", "correct horse battery staple 7")
    page.click("main button")
    expect(page.locator("#state")).to_have_attribute("data-state", "open")
    # The user's other tabs and devices, up to the cap (config.py's default).
    cookie = "; ".join(f"{c['name']}={c['value']}" for c in page.context.cookies())
    url = ws_url(base, f"/ws/talk/{room}/")
    cap = setting(stack, "realtime_user_sockets")
    with contextlib.ExitStack() as others:
        for _ in range(cap - 1):
            others.enter_context(connect(url, origin=base, additional_headers={"Cookie": cookie}))
        one_more = page.context.new_page()
        one_more.goto(f"{base}/talk/{room}/")
        expect(one_more.locator("#state")).to_have_text(
            "refused: you have too many chat tabs open; close one and reload"
        )
        expect(one_more.locator("#error")).to_contain_text(f"you have {cap} sockets open already")
        # The first page is not disturbed.
        expect(page.locator("#state")).to_have_attribute("data-state", "open")
