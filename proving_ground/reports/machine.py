"""The machine a figure came from, for the benchmark and soak reports."""

import contextlib
import os
import platform
import subprocess
from importlib.metadata import version
from pathlib import Path

import psutil

PACKAGES = ["django", "channels", "channels-redis", "gunicorn", "uvicorn", "redis"]


def host() -> dict:
    """Cores, processor, memory, Python and kernel of this machine."""
    cpu = platform.processor()
    with contextlib.suppress(OSError, StopIteration):
        cpu = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    return {
        "cores": os.cpu_count(),
        "cpu": cpu,
        "memory GiB": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "kernel": platform.release(),
    }


def packages(names: list[str] = PACKAGES) -> dict:
    return {name: version(name) for name in names}


def servers() -> dict:
    """The native servers' own version lines."""
    found = {}
    for binary, flag in [("nginx", "-v"), ("mariadbd", "--version"), ("redis-server", "--version")]:
        result = subprocess.run([binary, flag], capture_output=True, text=True)
        found[binary] = (result.stdout or result.stderr).strip().splitlines()[0]
    return found


def describe(info: dict) -> str:
    """One line for a report: '2 cores, <cpu>, 23.5 GiB; Python 3.11.7; ...'."""
    text = (
        f"{info['cores']} cores, {info['cpu']}, {info['memory GiB']} GiB; Python {info['python']}"
    )
    if info.get("packages"):
        text += "; " + ", ".join(f"{name} {v}" for name, v in info["packages"].items())
    return text
