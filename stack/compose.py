"""Read docker-compose.yml the way the native runner needs it: per service, its
environment (env_file list, then environment), bind-mounted config, ports and the
URL path or command of its health check. A wrong path or name here is an error."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import yaml
from dotenv import dotenv_values

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "docker-compose.yml"

_URL_PATH = re.compile(r"https?://[^/\s]+(/[^\s'\"]*)")
# Compose interpolation: $$ is a literal $, ${VAR}, ${VAR:-default} and $VAR come from
# the shell's environment.
_INTERPOLATION = re.compile(r"\$(?:(\$)|\{([A-Za-z_]\w*)(?:(:?-)([^}]*))?\}|([A-Za-z_]\w*))")


class ComposeError(RuntimeError):
    pass


@dataclass(frozen=True)
class Service:
    name: str
    spec: dict
    base_dir: Path

    def _path(self, relative: str) -> Path:
        path = (self.base_dir / relative).resolve()
        if not path.exists():
            raise ComposeError(f"service {self.name!r}: {relative} does not exist ({path})")
        return path

    def env_files(self) -> list[Path]:
        entries = self.spec.get("env_file", [])
        entries = [entries] if isinstance(entries, (str, dict)) else entries
        return [self._path(e["path"] if isinstance(e, dict) else e) for e in entries]

    def env(self) -> dict[str, str]:
        """The variables the container would get, in Compose's order of precedence."""
        merged: dict[str, str] = {}
        for env_file in self.env_files():
            merged.update({k: v or "" for k, v in dotenv_values(env_file).items()})
        environment = self.spec.get("environment", {})
        if isinstance(environment, list):
            environment = dict(item.split("=", 1) for item in environment)
        merged.update({k: "" if v is None else str(v) for k, v in environment.items()})
        return merged

    def bind_source(self, target: str) -> Path:
        """Host path of the bind mount whose container path is `target`."""
        for volume in self.spec.get("volumes", []):
            if isinstance(volume, str):
                source, _, rest = volume.partition(":")
                volume = {"type": "bind", "source": source, "target": rest.split(":")[0]}
            if volume.get("type") == "bind" and volume["target"] == target:
                return self._path(volume["source"])
        raise ComposeError(f"service {self.name!r} mounts nothing at {target}")

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


def interpolate(value, environ=os.environ):
    """Apply Compose's variable interpolation to every string in a loaded file."""
    if isinstance(value, dict):
        return {key: interpolate(item, environ) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item, environ) for item in value]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match) -> str:
        dollar, name, operator, default, bare = match.groups()
        if dollar:
            return "$"
        name = name or bare
        current = environ.get(name)
        if operator == ":-" and not current or operator == "-" and current is None:
            return default
        return current or ""

    return _INTERPOLATION.sub(substitute, value)


def load(path: Path = COMPOSE_FILE) -> dict[str, Service]:
    data = interpolate(yaml.safe_load(path.read_text()))
    return {
        name: Service(name, spec or {}, path.parent)
        for name, spec in (data.get("services") or {}).items()
    }
