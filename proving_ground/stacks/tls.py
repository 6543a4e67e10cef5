"""The production stack with HTTPS (docker-compose.tls.yml) in containers, its certbot
pointed at Pebble, Let's Encrypt's ACME test server (stacks/docker-compose.pebble.yml), as
a reader's would be at Let's Encrypt: the same files, only the CA's address differs.

Clients reach it as a browser on the domain would: TLS with the domain's name (SNI) to
the published port on 127.0.0.1, trusting Pebble's root and nothing else."""

from __future__ import annotations

import http.client
import re
import socket
import ssl
import time
from pathlib import Path

import websockets

from proving_ground.stacks.compose import COMPOSE_FILE, PROD_FILE
from proving_ground.stacks.docker import DockerStack, write_prod_env
from proving_ground.stacks.native import LOCALHOST, free_port

DOMAIN = "chat.test"
TLS_FILE = "docker-compose.tls.yml"
PEBBLE_FILE = str(
    Path(__file__).parent.relative_to(COMPOSE_FILE.parent) / "docker-compose.pebble.yml"
)
PEBBLE_DIRECTORY = "https://pebble:14000/dir"


class TlsStack(DockerStack):
    def __init__(self, **kwargs) -> None:
        files = (COMPOSE_FILE.name, PROD_FILE.name, TLS_FILE, PEBBLE_FILE)
        super().__init__(files=files, **kwargs)
        self.tls_port = free_port()
        write_prod_env(self.dir)
        # What a reader sets in the file prod-env.sh wrote, but for Pebble.
        set_variables(
            self.dir / "certbot/.env.certbot.prod",
            TLS_DOMAIN=DOMAIN,
            TLS_EMAIL=f"admin@{DOMAIN}",
            ACME_DIRECTORY=PEBBLE_DIRECTORY,
        )
        self.root_pem = ""

    def env(self) -> dict[str, str]:
        return {
            **super().env(),
            "NGINX_TLS_PUBLISHED_PORT": str(self.tls_port),
            "TLS_TEST_DOMAIN": DOMAIN,
        }

    @property
    def https_url(self) -> str:
        return f"https://{DOMAIN}:{self.tls_port}"

    def issuing_root(self) -> str:
        """The root Pebble signs its certificates with (its management API, itself on
        HTTPS under the test root certbot trusts)."""
        if not self.root_pem:
            port = self.compose("port", "pebble", "15000").stdout.strip().rsplit(":", 1)[1]
            minica = self.exec("certbot", "cat", "/pebble/pebble.minica.pem").stdout
            context = ssl.create_default_context(cadata=minica)
            connection = http.client.HTTPSConnection(LOCALHOST, int(port), context=context)
            connection.request("GET", "/roots/0")
            self.root_pem = connection.getresponse().read().decode()
        return self.root_pem

    def context(self, **options) -> ssl.SSLContext:
        """Trusts Pebble's issuing root only; `options`: attributes to set on it."""
        context = ssl.create_default_context(cadata=self.issuing_root())
        for name, value in options.items():
            setattr(context, name, value)
        return context

    def handshake(self, server_name: str = DOMAIN, context: ssl.SSLContext | None = None):
        """A TLS handshake with the published port: the certificate nginx gave (a dict,
        as ssl's getpeercert gives it), the protocol version agreed, and the application
        protocol (ALPN) nginx chose of HTTP/2 and HTTP/1.1, as a browser offers them."""
        context = context or self.context()
        context.set_alpn_protocols(["h2", "http/1.1"])
        with self.tls_socket(server_name, context) as tls:
            return tls.getpeercert(), tls.version(), tls.selected_alpn_protocol()

    def tls_socket(self, server_name: str, context: ssl.SSLContext) -> ssl.SSLSocket:
        """A TLS connection to the published port on 127.0.0.1, for `server_name` (SNI)."""
        raw = socket.create_connection((LOCALHOST, self.tls_port), timeout=10)
        return context.wrap_socket(raw, server_hostname=server_name)

    def wait_for_certificate(self, timeout: float = 240) -> dict:
        """certbot's first certificate, once nginx serves it."""
        deadline, error = time.monotonic() + timeout, None
        while time.monotonic() < deadline:
            try:
                return self.handshake()[0]
            except (OSError, ssl.SSLError) as failure:
                error = failure
                time.sleep(1)
        logs = self.compose("logs", "certbot", "nginx", "pebble", check=False).stdout[-6000:]
        raise AssertionError(f"no certificate in {timeout:.0f} s ({error})\n{logs}")

    def request(
        self, path: str, host: str = DOMAIN, method: str = "GET", headers: dict | None = None
    ) -> http.client.HTTPResponse:
        """One HTTPS request with SNI for the domain and `host` as the Host header."""
        connection = http.client.HTTPSConnection(DOMAIN, self.tls_port)
        connection.sock = self.tls_socket(DOMAIN, self.context())
        connection.request(method, path, headers={"Host": host, **(headers or {})})
        response = connection.getresponse()
        response.read()
        return response

    def websocket(self, path: str):
        """A wss:// socket as the page opens it: the domain's origin, TLS trusting Pebble."""
        return websockets.connect(
            f"wss://{DOMAIN}:{self.tls_port}{path}",
            host=LOCALHOST,
            port=self.tls_port,
            ssl=self.context(),
            origin=self.https_url,
            proxy=None,
            open_timeout=10,
        )


def set_variables(path: Path, **values: str) -> None:
    text = path.read_text()
    for name, value in values.items():
        text, count = re.subn(rf"(?m)^{name}=.*$", f"{name}={value}", text)
        assert count == 1, f"{path} sets {name} {count} times"
    path.write_text(text)
