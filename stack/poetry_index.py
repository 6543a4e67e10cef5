"""Lock and install Django/'s Poetry project where the index serves only the simple API.

Poetry reads release metadata from the index's per-version JSON API. Some mirrors and
proxies serve only the simple API (PEP 503/691) that pip uses, and there `poetry lock`
and `poetry install` stop with "Package ... not found". On a normal network use Poetry
directly (`poetry install --with dev`); this tool is the fallback the Makefile uses.

  lock     `poetry lock` through the simple index (pip's own default, added as a temporary
           source), then drop the source again so the committed lock is an ordinary one.
  install  create Poetry's virtualenv for Django/ and pip-install the exact locked,
           hash-checked set that `poetry export` writes from poetry.lock.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent / "Django"
SOURCE_NAME = "simple-index"


def _poetry(*args: str, capture: bool = False) -> str:
    if shutil.which("poetry") is None:
        sys.exit("poetry not found: install it with `pip install poetry poetry-plugin-export`")
    result = subprocess.run(
        ["poetry", "-C", str(PROJECT), *args],
        check=True,
        text=True,
        stdout=subprocess.PIPE if capture else None,
    )
    return result.stdout or ""


def _pip_index_url() -> str:
    # The index pip is configured for, so no registry address is written down here.
    from pip._internal.models.index import PyPI

    return os.environ.get("PIP_INDEX_URL") or PyPI.simple_url


def lock() -> None:
    import tomlkit
    from poetry.packages.locker import Locker

    pyproject = PROJECT / "pyproject.toml"
    original = pyproject.read_text()
    try:
        _poetry("source", "add", "--priority=primary", SOURCE_NAME, _pip_index_url())
        _poetry("lock")
    finally:
        pyproject.write_text(original)

    lock_path = PROJECT / "poetry.lock"
    data = tomlkit.parse(lock_path.read_text())
    for package in data["package"]:
        if package.get("source", {}).get("reference") == SOURCE_NAME:
            del package["source"]
    pyproject_data = tomlkit.parse(original).unwrap()
    data["metadata"]["content-hash"] = Locker(lock_path, pyproject_data)._get_content_hash()
    lock_path.write_text(tomlkit.dumps(data))
    _poetry("check", "--lock")


def install(groups: list[str]) -> None:
    _poetry("check", "--lock")
    _poetry("env", "use", sys.executable)
    venv = Path(_poetry("env", "info", "--path", capture=True).strip())
    with_groups = [f"--with={','.join(groups)}"] if groups else []
    with tempfile.NamedTemporaryFile("w+", suffix=".txt") as requirements:
        _poetry(
            "export", "--format=requirements.txt", f"--output={requirements.name}", *with_groups
        )
        subprocess.run(
            [
                str(venv / "bin" / "python"),
                "-m",
                "pip",
                "install",
                "--quiet",
                "--require-hashes",
                "--no-deps",
                "-r",
                requirements.name,
            ],
            check=True,
        )
    print(f"installed the locked set into {venv}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("lock")
    install_parser = sub.add_parser("install")
    install_parser.add_argument("--with", dest="groups", action="append", default=[])
    args = parser.parse_args()
    if args.command == "lock":
        lock()
    else:
        install(args.groups)


if __name__ == "__main__":
    main()
