"""A user of the site over HTTP, as a browser is: cookies kept, Django's CSRF token sent
with every POST. Signs up, asks for socket tickets, and gives the Cookie header that
opens a WebSocket as that user. With `https_host`, the user of a production stack, as
its TLS proxy in front of nginx would pass the browser's requests on; `headers` go with
every request (X-Forwarded-For: the client's address, as that proxy reports it);
`source`: connect from that address of this machine (127.0.0.2: another client)."""

from __future__ import annotations

import functools
import http.client
import json
import urllib.error
import urllib.parse
import urllib.request
from http.cookiejar import CookieJar, DefaultCookiePolicy

PASSWORD = "correct horse battery staple 7"


class _BehindTLS(DefaultCookiePolicy):
    """Secure cookies (production's) go back over the plain hop from the TLS proxy."""

    def return_ok_secure(self, cookie, request) -> bool:
        return True


class _FromAddress(urllib.request.HTTPHandler):
    """Connections from one of this machine's own addresses (127.0.0.2, ...): another
    client, as the server sees it."""

    def __init__(self, source: str) -> None:
        super().__init__()
        self.source = source

    def http_open(self, request):
        connection = functools.partial(http.client.HTTPConnection, source_address=(self.source, 0))
        return self.do_open(connection, request)


class SiteUser:
    def __init__(
        self,
        base_url: str,
        https_host: str | None = None,
        source: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.base = base_url
        # What the TLS proxy passes on: the site's name, the scheme, and the browser's
        # Origin (Django's CSRF check compares it with the host for HTTPS requests).
        self.proxied = (
            {"Host": https_host, "X-Forwarded-Proto": "https", "Origin": f"https://{https_host}"}
            if https_host
            else {}
        ) | (headers or {})
        self.jar = CookieJar(_BehindTLS() if https_host else None)
        handlers = [urllib.request.HTTPCookieProcessor(self.jar)]
        handlers += [_FromAddress(source)] if source else []
        self.opener = urllib.request.build_opener(*handlers)
        self.username: str | None = None  # once signed up

    def cookie(self, name: str) -> str | None:
        return next((c.value for c in self.jar if c.name == name), None)

    def request(self, path: str, data: bytes | None = None, headers: dict | None = None):
        """(status, body) of a GET, or a POST with `data`; redirects followed."""
        headers = {**self.proxied, **(headers or {})}
        request = urllib.request.Request(self.base + path, data=data, headers=headers)
        try:
            with self.opener.open(request, timeout=15) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()

    def post_form(self, path: str, fields: dict) -> tuple[int, str]:
        if self.cookie("csrftoken") is None:
            self.request(path)  # the form's page sets the CSRF cookie
        data = urllib.parse.urlencode({**fields, "csrfmiddlewaretoken": self.cookie("csrftoken")})
        return self.request(path, data.encode())

    def sign_up(self, username: str, password: str = PASSWORD) -> SiteUser:
        status, body = self.post_form(
            "/accounts/signup/",
            {"username": username, "password1": password, "password2": password},
        )
        if status != 200 or self.cookie("sessionid") is None:
            raise AssertionError(f"sign-up of {username!r} failed: {status} {body[:500]}")
        self.username = username
        return self

    def ticket(self) -> str:
        """A ticket for one socket (POST /api/tickets, signed in by the session)."""
        if self.cookie("csrftoken") is None:
            self.request("/talk/")
        status, body = self.request(
            "/api/tickets", b"", headers={"X-CSRFToken": self.cookie("csrftoken")}
        )
        if status != 201:
            raise AssertionError(f"no ticket: {status} {body[:500]}")
        return json.loads(body)["ticket"]

    @property
    def socket_headers(self) -> dict[str, str]:
        """What a browser of this user sends with a WebSocket handshake."""
        return {"Cookie": f"sessionid={self.cookie('sessionid')}"}
