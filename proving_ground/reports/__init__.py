"""How the experiments report, one way for all: a command's arguments (--mode, --out),
the machine and versions a figure came from, and the report written for people
(Markdown) and for data (JSON) in a folder of its own under --out, then printed."""

import argparse
import json
import math
import statistics
import time
from pathlib import Path

from proving_ground.reports.machine import host, packages, servers
from proving_ground.stacks.compose import ROOT


def command_line(doc: str, modes) -> argparse.Namespace:
    """A benchmark command's arguments: --mode (one of `modes`; quick by default) and
    --out (where write_results puts its folder)."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--mode", choices=list(modes), default="quick")
    parser.add_argument("--out", type=Path, default=ROOT / "bench-results")
    return parser.parse_args()


def write_results(out: Path, name: str, report: str, data) -> Path:
    """A new folder under `out`, named by the time, with `name`.md (the report) and
    `name`.json (the data); the folder."""
    folder = out / time.strftime("%Y%m%d-%H%M%S")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.md").write_text(report)
    (folder / f"{name}.json").write_text(json.dumps(data, indent=2))
    return folder


def publish(out: Path, name: str, report: str, data, started: float) -> Path:
    """write_results, then the report and where it went, printed; the folder."""
    folder = write_results(out, name, report, data)
    print(report)
    print(f"written to {folder} in {time.monotonic() - started:.0f} s")
    return folder


def machine() -> dict:
    names = ["django", "channels", "channels-redis", "gunicorn", "uvicorn", "daphne", "redis"]
    return {**host(), "packages": packages(names), "servers": servers()}


def machine_lines(info: dict) -> list[str]:
    """A report's lines on the machine and the versions it ran (`machine()`)."""
    return [
        "Machine: " + ", ".join(f"{k} {v}" for k, v in info.items() if not isinstance(v, dict)),
        "",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in info["packages"].items()),
    ]


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    return (
        statistics.quantiles(values, n=100, method="inclusive")[q - 1]
        if len(values) > 1
        else values[0]
    )


def median_interval(values: list[float], confidence: float = 0.95) -> tuple[float, float]:
    """A distribution-free interval that holds the median of what `values` sample with at
    least `confidence`: the k-th smallest and k-th largest value, k the largest rank
    whose binomial tail stays within (1 - confidence) / 2 (the sign test's interval)."""
    ordered, n = sorted(values), len(values)
    tail, k = 0.0, 0
    while k < n // 2:
        tail += math.comb(n, k) / 2**n  # P(fewer than k + 1 values below the median)
        if tail > (1 - confidence) / 2:
            break
        k += 1
    if k == 0:
        raise ValueError(f"{n} values are too few for a {confidence:.0%} interval")
    return ordered[k - 1], ordered[n - k]
