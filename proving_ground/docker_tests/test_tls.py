"""HTTPS on a domain of its own (docker-compose.tls.yml): certbot gets the certificate from
an ACME CA (Pebble, Let's Encrypt's test server) by HTTP-01 through nginx, nginx serves it
with TLS 1.2 and 1.3 only, Django follows (redirects, HSTS, Secure cookies), and a renewal
reaches nginx while open WebSockets stay open."""

import asyncio
import http.client
import json
import shutil
import ssl
import subprocess
import uuid

import pytest
import websockets

from proving_ground.faults import limits
from proving_ground.stacks.native import LOCALHOST
from proving_ground.stacks.tls import DOMAIN


def test_certbot_got_the_domains_certificate_from_the_ca_through_nginx(tls_stack):
    certificate, _, _ = tls_stack.handshake()
    assert ("DNS", DOMAIN) in certificate["subjectAltName"]
    # Verified against Pebble's issuing root only: the CA issued it, not a placeholder.
    issuer = dict(pair[0] for pair in certificate["issuer"])
    assert "Pebble" in issuer["commonName"], issuer
    log = tls_stack.compose("logs", "certbot").stdout
    assert "fullchain.pem handed to nginx" in log, log


def test_pages_are_offered_http_2(tls_stack):
    assert tls_stack.handshake()[2] == "h2"


def test_http_answers_the_acme_challenge_path_and_redirects_the_rest_to_the_domain(tls_stack):
    for host in (DOMAIN, "forged.example"):
        connection = http.client.HTTPConnection(LOCALHOST, tls_stack.http_port, timeout=10)
        connection.request("GET", "/talk/lobby/?a=1", headers={"Host": host})
        response = connection.getresponse()
        assert response.status == 301
        assert response.getheader("Location") == f"https://{DOMAIN}/talk/lobby/?a=1"
    connection = http.client.HTTPConnection(LOCALHOST, tls_stack.http_port, timeout=10)
    connection.request("GET", "/.well-known/acme-challenge/none", headers={"Host": DOMAIN})
    assert connection.getresponse().status == 404  # served from the webroot, not redirected


def test_django_follows_https_hsts_and_secure_cookies(tls_stack):
    page = tls_stack.request("/accounts/login/")
    assert page.status == 200
    assert page.getheader("Strict-Transport-Security", "").startswith("max-age=")
    cookies = page.headers.get_all("Set-Cookie") or []
    assert cookies and all("Secure" in cookie for cookie in cookies), cookies
    # The probes answer without a redirect; pages over plain HTTP never reach Django.
    assert tls_stack.request("/healthz").status == 200


def test_a_form_post_from_the_domains_https_origin_passes_the_csrf_check(tls_stack):
    page = tls_stack.request("/accounts/login/")
    token = next(
        cookie.split(";")[0].split("=", 1)[1]
        for cookie in page.headers.get_all("Set-Cookie")
        if cookie.startswith("csrftoken=")
    )
    headers = {
        "Origin": tls_stack.https_url,
        "Referer": f"{tls_stack.https_url}/accounts/login/",
        "Cookie": f"csrftoken={token}",
        "Content-Type": "application/x-www-form-urlencoded",
        "X-CSRFToken": token,
    }
    response = tls_stack.request(
        "/accounts/login/", method="POST", headers=headers, host=f"{DOMAIN}:{tls_stack.tls_port}"
    )
    assert response.status != 403  # a wrong password is the form again, not a CSRF refusal


def test_two_sockets_chat_over_wss(tls_stack):
    async def chat():
        path = f"/ws/talk/tls-{uuid.uuid4().hex[:8]}/"
        async with tls_stack.websocket(path) as alice, tls_stack.websocket(path) as bob:
            for socket in (alice, bob):
                assert json.loads(await socket.recv())["type"] == "history"
            frame = {"type": "message", "nickname": "alice", "text": "over TLS"}
            await alice.send(json.dumps(frame))
            return await next_message(bob)

    assert asyncio.run(chat())["text"] == "over TLS"


def test_sockets_past_one_addresss_cap_get_429_over_wss(tls_stack):
    """nginx ends TLS itself: the address it counts is the client's (here every test
    client's: Docker's gateway), as shipped."""
    shipped = limits.shipped_limits()
    cap = int(shipped["NGINX_SOCKETS_PER_ADDRESS"])
    path = f"/ws/talk/tls-{uuid.uuid4().hex[:8]}/"

    async def crowd():
        held = [await tls_stack.websocket(path) for _ in range(cap)]
        try:
            with pytest.raises(websockets.InvalidStatus) as refused:
                await tls_stack.websocket(path)
        finally:
            await asyncio.gather(*(socket.close() for socket in held))
        async with tls_stack.websocket(path) as again:  # the cap counts open sockets
            assert json.loads(await again.recv())["type"] == "history"
        return refused.value.response

    response = asyncio.run(crowd())
    assert response.status_code == 429
    assert response.headers["Retry-After"] == shipped["NGINX_RETRY_AFTER"]
    assert b"Too many requests" in response.body


async def next_message(socket) -> dict:
    while (frame := json.loads(await asyncio.wait_for(socket.recv(), 10)))["type"] != "message":
        pass
    return frame


def test_a_renewal_reaches_nginx_while_an_open_websocket_stays_open(tls_stack):
    async def renew_under_a_socket():
        path = f"/ws/talk/renewal-{uuid.uuid4().hex[:8]}/"
        before = tls_stack.handshake()[0]["serialNumber"]
        async with tls_stack.websocket(path) as socket:
            await socket.recv()  # history
            renewal = await asyncio.to_thread(
                tls_stack.exec,
                "certbot",
                "/bin/sh",
                "/usr/local/bin/certificates.sh",
                "renew",
                "--force-renewal",
            )
            assert "fullchain.pem handed to nginx" in renewal.stdout, renewal.stdout
            after = before
            for _ in range(60):  # nginx looks for a new certificate every 5 s
                after = (await asyncio.to_thread(tls_stack.handshake))[0]["serialNumber"]
                if after != before:
                    break
                await asyncio.sleep(1)
            frame = {"type": "message", "nickname": "alice", "text": "still here"}
            await socket.send(json.dumps(frame))
            echoed = await next_message(socket)
        return before, after, echoed

    before, after, echoed = asyncio.run(renew_under_a_socket())
    assert after != before, "nginx still serves the old certificate"
    assert echoed["text"] == "still here"


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
def test_tls_1_2_and_1_3_are_served(tls_stack, version):
    context = tls_stack.context(minimum_version=version, maximum_version=version)
    assert tls_stack.handshake(context=context)[1] == version.name.replace("_", ".")


def test_sslscan_finds_only_tls_1_2_and_1_3_and_no_weak_cipher(tls_stack):
    sslscan = shutil.which("sslscan")
    if sslscan is None:
        pytest.fail("sslscan is not installed: sudo apt-get install sslscan")
    result = subprocess.run(
        [sslscan, "--no-colour", f"--sni-name={DOMAIN}", f"{LOCALHOST}:{tls_stack.tls_port}"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    protocols = dict(
        line.split()[:2]
        for line in result.stdout.splitlines()
        if line.startswith(("SSLv", "TLSv")) and line.split()[1] in ("enabled", "disabled")
    )
    assert protocols == {
        "SSLv2": "disabled",
        "SSLv3": "disabled",
        "TLSv1.0": "disabled",
        "TLSv1.1": "disabled",
        "TLSv1.2": "enabled",
        "TLSv1.3": "enabled",
    }, result.stdout
    ciphers = [
        line for line in result.stdout.splitlines() if line.startswith(("Preferred", "Accepted"))
    ]
    assert ciphers, result.stdout
    weak = [line for line in ciphers if not any(aead in line for aead in ("GCM", "CHACHA20"))]
    assert weak == [], weak


def test_another_name_gets_no_certificate_and_another_host_no_page(tls_stack):
    with pytest.raises(ssl.SSLError, match="(?i)unrecognized.name"):
        tls_stack.handshake(server_name="forged.example")
    assert tls_stack.request("/", host="forged.example").status == 421
