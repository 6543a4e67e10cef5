"""HTTP through nginx and directly to Gunicorn/Uvicorn."""

import json
import re
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from proving_ground.stacks.compose import ROOT


@pytest.mark.parametrize(
    ("which", "server", "via_nginx"),
    [("http_url", "nginx", True), ("django_url", "uvicorn", False)],
)
def test_index_is_answered_by_django(stack, which, server, via_nginx):
    response = httpx.get(getattr(stack, which) + "/")
    assert response.status_code == 200
    assert response.headers["server"].startswith(server)
    embedded = re.search(
        r'<script id="initial-status" type="application/json">(.*?)</script>', response.text
    )
    status = json.loads(embedded.group(1))
    assert status["ok"] is True and status["worker_pid"] > 0
    assert status["request"]["via_nginx"] is via_nginx


def test_static_files_come_from_nginx_not_django(stack):
    css = Path(ROOT / "Django/static/core/site.css").read_bytes()
    # Django's port serves them too (WhiteNoise, for debugging): its log must not grow.
    served_by_django = stack.log_tail("django", lines=100_000).count("/static/core/site.css")
    response = httpx.get(stack.http_url + "/static/core/site.css")
    assert response.status_code == 200
    assert response.content == css
    assert response.headers["server"].startswith("nginx")
    log = stack.log_tail("django", lines=100_000)
    assert log.count("/static/core/site.css") == served_by_django


def test_django_own_port_serves_the_static_files_for_debugging(stack):
    css = Path(ROOT / "Django/static/core/site.css").read_bytes()
    response = httpx.get(stack.django_url + "/static/core/site.css")
    assert response.status_code == 200 and response.content == css
    assert response.headers["content-type"].startswith("text/css")
    admin = httpx.get(stack.http_url + "/static/admin/css/base.css")
    assert admin.status_code == 200, "collectstatic did not fill the folder nginx serves"


def test_nginx_sets_forwarded_headers_and_ignores_the_clients(stack):
    spoofed = {"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https"}
    seen = httpx.get(stack.http_url + "/api/status", headers=spoofed).json()["request"]
    assert seen["via_nginx"] is True
    assert seen["forwarded_for"] == "127.0.0.1"
    assert seen["forwarded_proto"] == "http"
    assert seen["client"] == "127.0.0.1"
    # The Host the client sent, port included: Django's CSRF check compares a form's
    # Origin with it.
    assert seen["host"] == urlsplit(stack.http_url).netloc


def test_direct_requests_are_reported_as_direct(stack):
    seen = httpx.get(stack.django_url + "/api/status").json()["request"]
    assert seen["via_nginx"] is False


def test_unknown_host_is_refused(stack):
    response = httpx.get(stack.http_url + "/", headers={"Host": "attacker.example"})
    assert response.status_code == 400
