"""How the proving ground's commands report, one way for all: a command's arguments
(parser: --mode, --out), the machine and versions a figure came from, tables (Markdown,
or aligned text for a terminal), and the report written for people (Markdown) and for
data (JSON) in a folder of its own under --out, then printed."""

import argparse
import json
import math
import statistics
import time
from pathlib import Path

from proving_ground.reports.machine import host, packages, servers
from proving_ground.stacks.compose import ROOT


def parser(doc: str, modes=None, out: str | None = None) -> argparse.ArgumentParser:
    """A command's arguments, described by its docstring's first paragraph: --mode (one of
    `modes`, quick by default) when it has modes, --out (a folder under the project
    root) when it writes results. The command adds its own."""
    first_paragraph = doc.strip().split("\n\n")[0]
    parser = argparse.ArgumentParser(description=" ".join(first_paragraph.split()))
    if modes is not None:
        parser.add_argument("--mode", choices=list(modes), default="quick")
    if out is not None:
        parser.add_argument("--out", type=Path, default=ROOT / out)
    return parser


def write_results(out: Path, name: str, report: str, data) -> Path:
    """A new folder under `out`, named by the time, with `name`.md (the report) and
    `name`.json (the data); the folder."""
    folder = out / time.strftime("%Y%m%d-%H%M%S")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.md").write_text(report)
    (folder / f"{name}.json").write_text(json.dumps(data, indent=2))
    return folder


def publish(out: Path, name: str, report: str, data, started: float, plot=None, footer=()) -> Path:
    """write_results and `plot(folder)`, then the report, the `footer` lines and where
    it went, printed; the folder."""
    folder = write_results(out, name, report, data)
    if plot is not None:
        plot(folder)
    print(report)
    for line in footer:
        print(line)
    print(f"written to {folder} in {time.monotonic() - started:.0f} s")
    return folder


# -- rendering ------------------------------------------------------------------------


def table(header: list[str], rows, align: str = "") -> list[str]:
    """A Markdown table's lines: `align` has a letter per column, "l" or "r" (missing
    letters: "l"); a cell of None shows as "-"."""
    rules = ["---:" if a == "r" else "---" for a in align.ljust(len(header), "l")]
    head = _row(header).replace("|  |", "| |")  # a header's empty cell, as people write it
    lines = [head, "|" + "|".join(rules) + "|"]
    return lines + [_row(row) for row in rows]


def _row(cells) -> str:
    return "| " + " | ".join("-" if cell is None else str(cell) for cell in cells) + " |"


def columns(rows: list[list[str]], align: str = "", last_free: bool = False) -> list[str]:
    """Plain-text lines of `rows` (the first: the header) in aligned columns, two spaces
    apart: `align` as in table(); `last_free`: the last column unpadded (free text)."""
    fixed = [row[:-1] for row in rows] if last_free else rows
    widths = [max(len(row[i]) for row in fixed) for i in range(len(fixed[0]))]
    align = align.ljust(len(widths), "l")
    lines = []
    for row, cells in zip(rows, fixed, strict=True):
        padded = [
            cell.rjust(width) if a == "r" else cell.ljust(width)
            for cell, width, a in zip(cells, widths, align, strict=False)
        ]
        lines.append("  ".join(padded + ([row[-1]] if last_free else [])))
    return lines


def heading(title: str, info: dict) -> list[str]:
    """A report's first lines: its title and the machine it ran on (`machine()`)."""
    shown = ", ".join(f"{k} {v}" for k, v in info.items() if not isinstance(v, dict))
    return [f"# {title}", "", f"Machine: {shown}"]


def show_machine(info: dict) -> None:
    """The machine a run is on, printed before it starts (a long run's log says it first)."""
    print("machine:", json.dumps(info))


def machine() -> dict:
    names = ["django", "channels", "channels-redis", "gunicorn", "uvicorn", "daphne", "redis"]
    return {**host(), "packages": packages(names), "servers": servers()}


def versions(info: dict, servers: bool = False) -> list[str]:
    """The versions of the packages a run used (`machine()`); with `servers`, of the
    servers too."""
    lines = ["Versions: " + ", ".join(f"{k} {v}" for k, v in info["packages"].items())]
    return lines + (["Servers: " + "; ".join(info["servers"].values())] if servers else [])


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
