"""The Swarm stack (docker-stack.yml) on a single-node swarm, for the Docker suite.

A SwarmStack copies the repository (as DockerStack does), writes the production env
files, builds the production image with Compose, creates the stack's Swarm secrets,
and deploys the copy under a stack name of its own on a free host port. The swarm is
initialised on 127.0.0.1 when the engine is not in one, and left again afterwards."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import subprocess
import tempfile
import threading
import time
import uuid
from pathlib import Path

import yaml

from proving_ground.clients import ChatClient, chat_steadily
from proving_ground.stacks.docker import (
    DockerError,
    allow_host,
    copy_repository,
    docker,
    require_docker,
    write_prod_env,
)
from proving_ground.stacks.native import PublishedURLs, free_port

STACK_FILE = "docker-stack.yml"
PROD_FILES = ["docker-compose.yml", "docker-compose.prod.yml"]
# The host name the production settings are told to allow.
HOST = "localhost"


class SwarmStack(PublishedURLs):
    def __init__(self, replicas: int = 3) -> None:
        require_docker()
        self.tmp = Path(tempfile.mkdtemp(prefix="channels-swarm-"))
        self.dir = copy_repository(self.tmp / "repo")
        self.name = f"ct{uuid.uuid4().hex[:8]}"
        self.image = f"{self.name}-django:production"
        self.replicas = replicas
        self.http_port = free_port()
        self.joined_swarm = False
        self.secrets: list[str] = []

    @property
    def django_port(self) -> int:
        raise DockerError("the swarm stack publishes nginx only")

    def env(self) -> dict[str, str]:
        # Not the test process's environment: the Docker CLI fills a stack file's empty
        # values from it (and the unit-test settings export development credentials).
        keep = ("PATH", "HOME", "DOCKER_HOST", "DOCKER_CONFIG", "DOCKER_BUILDKIT")
        return {
            **{key: os.environ[key] for key in keep if key in os.environ},
            "DJANGO_IMAGE": self.image,
            "DJANGO_REPLICAS": str(self.replicas),
            "NGINX_PUBLISHED_PORT": str(self.http_port),
        }

    # -- lifecycle -------------------------------------------------------------------
    def __enter__(self) -> SwarmStack:
        try:
            self.deploy()
            self.wait_healthy()
        except BaseException:
            self.remove()
            raise
        return self

    def __exit__(self, *exc_info) -> None:
        self.remove()

    def deploy(self) -> None:
        state = docker("info", "--format", "{{.Swarm.LocalNodeState}}").stdout.strip()
        if state != "active":
            docker("swarm", "init", "--advertise-addr", "127.0.0.1")
            self.joined_swarm = True
        write_prod_env(self.dir)
        allow_host(self.dir, HOST)
        compose = ["docker", "compose", "-p", self.name]
        for name in PROD_FILES:
            compose += ["-f", name]
        subprocess.run(
            [*compose, "build", "django"],
            cwd=self.dir,
            env={**self.env(), "COMPOSE_PROJECT_NAME": self.name},
            capture_output=True,
            text=True,
            check=True,
            timeout=600,
        )
        for name in self.secret_names():
            existing = docker("secret", "inspect", name, check=False)
            if existing.returncode:  # the stack's external secrets, created as the docs say
                docker("secret", "create", name, "-", input=secrets.token_hex(32))
                self.secrets.append(name)
        self.stack_deploy()

    def stack_deploy(self) -> None:
        # No --detach: CLIs before 26 lack it, and later ones detach by default.
        docker("stack", "deploy", "-c", STACK_FILE, self.name, cwd=self.dir, env=self.env())

    def secret_names(self) -> list[str]:
        spec = yaml.safe_load((self.dir / STACK_FILE).read_text())
        return sorted(spec["secrets"])

    def remove(self) -> None:
        # Every volume the tasks used, anonymous ones (the images' VOLUMEs) included:
        # `docker stack rm` leaves them all.
        volumes = {
            mount["Name"]
            for container in self.containers(all_states=True)
            for mount in container["Mounts"]
            if mount["Type"] == "volume"
        }
        docker("stack", "rm", self.name, check=False)
        deadline = time.monotonic() + 120
        while self.containers(all_states=True) and time.monotonic() < deadline:
            time.sleep(1)
        while docker("network", "inspect", f"{self.name}_default", check=False).returncode == 0:
            if time.monotonic() > deadline:
                break
            time.sleep(1)
        labelled = docker(
            "volume",
            "ls",
            "-q",
            "--filter",
            f"label=com.docker.stack.namespace={self.name}",
            check=False,
        ).stdout.split()
        if volumes or labelled:
            docker("volume", "rm", "-f", *volumes, *labelled, check=False)
        for name in self.secrets:
            docker("secret", "rm", name, check=False)
        docker("image", "rm", "-f", self.image, check=False)
        if self.joined_swarm:
            docker("swarm", "leave", "--force", check=False)
        shutil.rmtree(self.tmp, ignore_errors=True)

    # -- what tests look at ------------------------------------------------------------
    def containers(self, service: str | None = None, all_states: bool = False) -> list[dict]:
        """`docker inspect` of the stack's containers (of one service)."""
        label = (
            f"com.docker.swarm.service.name={self.name}_{service}"
            if service
            else (f"com.docker.stack.namespace={self.name}")
        )
        ids = docker(
            "ps", *(["-a"] if all_states else []), "-q", "--filter", f"label={label}", check=False
        ).stdout.split()
        if not ids:
            return []
        # A container listed a moment ago may be gone (a task replaced, the stack being
        # removed): `docker inspect` still prints the others and fails for that one.
        result = docker("inspect", *ids, check=False)
        if result.returncode and "No such object" not in result.stderr:
            raise DockerError(f"docker inspect exited {result.returncode}: {result.stderr}")
        return json.loads(result.stdout or "[]")

    def health(self, service: str) -> list[str]:
        return [
            c["State"].get("Health", {}).get("Status", "none") for c in self.containers(service)
        ]

    def wait_healthy(self, timeout: float = 300) -> float:
        """Seconds until every service has its replicas running and healthy."""
        start = time.monotonic()
        wanted = {"nginx": 1, "django": self.replicas, "mysql": 1, "redis": 1}
        while True:
            health = {service: self.health(service) for service in wanted}
            if all(
                health[s].count("healthy") == n and len(health[s]) == n for s, n in wanted.items()
            ):
                return time.monotonic() - start
            if time.monotonic() - start > timeout:
                tasks = docker("stack", "ps", "--no-trunc", self.name, check=False).stdout
                raise DockerError(f"stack not healthy after {timeout}s: {health}\n{tasks}")
            time.sleep(1)

    def django_hostnames(self) -> set[str]:
        return {c["Config"]["Hostname"] for c in self.containers("django")}

    def kill_django(self, hostname: str) -> None:
        """SIGKILL the django task on `hostname`, as a crash or the OOM killer would."""
        tasks = [c for c in self.containers("django") if c["Config"]["Hostname"] == hostname]
        os.kill(tasks[0]["State"]["Pid"], 9)

    def room_offsets(self, room: str) -> list[int]:
        """The offsets of the room's stored messages, read by Django in a django task
        (the Swarm publishes no MySQL port)."""
        code = (
            "import json; from talk.models import Message;"
            f" print(json.dumps(list(Message.objects.filter(room__slug={room!r})"
            ".values_list('offset', flat=True))))"
        )
        task = [c for c in self.containers("django") if c["State"]["Running"]][0]
        result = docker("exec", task["Id"], "python", "manage.py", "shell", "-c", code)
        return json.loads(result.stdout.strip().splitlines()[-1])

    def service(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
        """`docker service ARGS` with the django service's full name last."""
        return docker("service", *args, f"{self.name}_django", timeout=timeout)


async def rolling_update(
    swarm: SwarmStack, clients: list[ChatClient], monitor: str | None = None
) -> dict:
    """`docker service update --force` of django while `clients` chat steadily (each
    reconnecting when its task goes); returns the update's seconds and the reconnects.
    `monitor`: instead of the stack file's update monitor (how long Swarm watches each new
    task for a failure before it replaces the next)."""
    stop, log = threading.Event(), {"reconnects": 0}
    started = time.monotonic()
    options = ["--update-monitor", monitor] if monitor else []
    update = asyncio.create_task(
        asyncio.to_thread(swarm.service, "update", "--force", *options, "--detach=false", "--quiet")
    )
    talk = asyncio.gather(*(chat_steadily(client, stop, log) for client in clients))
    await update
    seconds = time.monotonic() - started
    await asyncio.sleep(3)  # a few messages on the new tasks
    stop.set()
    await talk
    return {"seconds": seconds, **log}


async def stored_in_history(swarm: SwarmStack, client: ChatClient, origin: str) -> bool:
    """Whether every message `client` had acknowledged is in its room's history, as a
    fresh socket receives it."""
    fresh = ChatClient(swarm.http_url, client.room, "reader", origin=origin)
    history = {m["id"] for m in (await fresh.connect())["messages"]}
    await fresh.close()
    return {m["id"] for m in client.acknowledged} <= history
