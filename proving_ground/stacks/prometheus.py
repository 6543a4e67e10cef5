"""Reading the stack's metrics: a scrape of Django's /metrics, or Prometheus' HTTP API."""

from __future__ import annotations

import time
from dataclasses import dataclass

import httpx
from prometheus_client.parser import text_string_to_metric_families


@dataclass(frozen=True)
class Sample:
    name: str
    labels: dict[str, str]
    value: float


class Scrape:
    """One /metrics page: samples summed by name and any labels asked for."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.samples = [
            Sample(sample.name, dict(sample.labels), sample.value)
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        ]

    def value(self, name: str, **labels: str) -> float:
        return sum(
            sample.value
            for sample in self.samples
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
        )

    def names(self) -> set[str]:
        return {sample.name for sample in self.samples}


def scrape(base_url: str) -> Scrape:
    response = httpx.get(f"{base_url}/metrics", timeout=10)
    response.raise_for_status()
    return Scrape(response.text)


class Prometheus:
    """Prometheus' HTTP API (/api/v1)."""

    def __init__(self, url: str) -> None:
        self.url = url

    def get(self, path: str, **params) -> dict:
        response = httpx.get(f"{self.url}/api/v1/{path}", params=params, timeout=15)
        body = response.json()
        if body.get("status") != "success":
            raise AssertionError(f"Prometheus {path} {params}: {body}")
        return body["data"]

    def query(self, expression: str) -> list[dict]:
        """The instant vector (or scalar) `expression` gives now."""
        return self.get("query", query=expression)["result"]

    def scalar(self, expression: str) -> float | None:
        """The value of a one-element result; None when it has no data."""
        result = self.query(expression)
        if not result:
            return None
        if len(result) > 1:
            raise AssertionError(f"{expression}: {len(result)} series, expected one")
        return float(result[0]["value"][1])

    def wait_for(self, expression: str, expected: float, timeout: float = 60) -> float | None:
        """Query until `expression` equals `expected` (scrapes come every few seconds);
        returns the last value seen."""
        return self.wait_until(expression, lambda value: value == expected, timeout)

    def wait_until(self, expression: str, predicate, timeout: float = 60) -> float | None:
        """Query until `predicate(value)` holds; returns the last value seen."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.scalar(expression)
            if (value is not None and predicate(value)) or time.monotonic() > deadline:
                return value
            time.sleep(1)

    def settled(self, expression: str, quiet: float = 7, timeout: float = 60) -> float | None:
        """The value once it has not changed for `quiet` seconds (longer than a scrape
        interval): what happened before has all been scraped."""
        deadline = time.monotonic() + timeout
        value, since = self.scalar(expression), time.monotonic()
        while time.monotonic() - since < quiet and time.monotonic() < deadline:
            time.sleep(1)
            now = self.scalar(expression)
            if now != value:
                value, since = now, time.monotonic()
        return value

    def targets(self) -> list[dict]:
        return self.get("targets")["activeTargets"]

    def rules(self) -> list[dict]:
        return [rule for group in self.get("rules")["groups"] for rule in group["rules"]]
