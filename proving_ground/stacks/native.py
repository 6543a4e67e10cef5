"""Run the Compose stack natively, from the same folders: MariaDB (for MySQL), Redis,
Django through Django/entrypoint.sh (Gunicorn + Uvicorn workers) and nginx.

    make native          # nginx on localhost:${HTTP_PORT:-8000}, Django on :${DJANGO_PORT:-8080}

Everything it needs comes from docker-compose.yml (proving_ground/stacks/compose.py).
Process start-up, readiness polling and shutdown are mirakuru's; this module only says
what to start.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import string
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from mirakuru import HTTPExecutor, TCPExecutor
from mirakuru.base import ENV_UUID, SimpleExecutor

from proving_ground import reports
from proving_ground.stacks import compose

# Server binaries and the Debian package that provides each.
BINARIES = {
    "mariadbd": "mariadb-server",
    "mariadb-install-db": "mariadb-server",
    "redis-server": "redis-server",
    "nginx": "nginx",
}
LOCALHOST = "127.0.0.1"
# Gunicorn's reloader polls each second; a little more, for its first pass.
RELOADER_INTERVAL = 1.5


# Every client of a test or benchmark comes from this machine, one address: the proving
# ground's stacks lift nginx's per-address limits (nginx/.env.nginx) unless one is asked
# to keep them as shipped (the tests of those limits, and `make native`).
ONE_ADDRESS_LOAD = {
    "NGINX_SOCKETS_PER_ADDRESS": "65535",  # nginx's largest
    "NGINX_SIGN_IN_RATE": "100000r/s",
    "NGINX_SIGN_IN_BURST": "1000000",
}

# The few variables of this shell a service still gets, as a container gets its image's.
HOST_VARIABLES = {"PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "USER"}


class StackError(RuntimeError):
    pass


class ServiceHTTPExecutor(HTTPExecutor):
    """Like a container, the process sees only its service's environment, not this
    shell's (where pytest-django's DJANGO_SETTINGS_MODULE, say, would leak in)."""

    @property
    def envvars(self) -> dict[str, str]:
        keep = HOST_VARIABLES | set(self._envvars) | {ENV_UUID}
        return {key: value for key, value in super().envvars.items() if key in keep}


_handed_out: set[int] = set()


def free_port() -> int:
    """A port nothing listens on, never one this process handed out before: the kernel
    can give the same free port to two binds in a row, and a stack's nginx then found
    its own Gunicorn on its port (`make faults` saw it once)."""
    while True:
        with socket.socket() as sock:
            sock.bind((LOCALHOST, 0))
            port = sock.getsockname()[1]
        if port not in _handed_out:
            _handed_out.add(port)
            return port


def require_binaries(binaries: dict[str, str] = BINARIES) -> dict[str, str]:
    """{program: path} for each program, or a StackError naming the Debian packages."""
    found, missing = {}, []
    for binary, package in binaries.items():
        path = shutil.which(binary) or shutil.which(binary, path="/usr/sbin:/sbin")
        if path:
            found[binary] = path
        else:
            missing.append(f"{binary} (Debian package: {package})")
    if missing:
        packages = sorted({binaries[m.split()[0]] for m in missing})
        raise StackError(
            "missing programs: "
            + ", ".join(missing)
            + f"\ninstall them with: sudo apt-get install {' '.join(packages)}"
        )
    return found


def _sql_string(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


def _sql_name(value: str) -> str:
    return "`" + value.replace("`", "``") + "`"


def mysql_init_sql(env: dict[str, str], root_password: str) -> str:
    """What the mysql image's entrypoint does on first start, for MariaDB's --init-file.
    The database takes its character set from my.cnf, as in the container."""
    database, user = env["MYSQL_DATABASE"], env["MYSQL_USER"]
    account, password = f"{_sql_string(user)}@'%'", _sql_string(env["MYSQL_PASSWORD"])
    return "\n".join(
        [
            f"CREATE DATABASE IF NOT EXISTS {_sql_name(database)};",
            f"CREATE USER IF NOT EXISTS {account} IDENTIFIED BY {password};",
            f"GRANT ALL PRIVILEGES ON {_sql_name(database)}.* TO {account};",
            f"ALTER USER 'root'@'localhost' IDENTIFIED BY {_sql_string(root_password)};",
            "",
        ]
    )


def with_host_port(url: str, host: str, port: int) -> str:
    parts = urlsplit(url)
    auth = parts.netloc.rpartition("@")[0]
    return urlunsplit(parts._replace(netloc=(f"{auth}@" if auth else "") + f"{host}:{port}"))


def render_template(text: str, env: dict[str, str]) -> str:
    """Like the nginx image's envsubst: ${VAR} of defined variables only."""
    return string.Template(text).safe_substitute(env)


def entrypoint_serving(app: str) -> list[str]:
    """A django command: the service's own entrypoint.sh (wait for the database, migrate,
    collectstatic), with Gunicorn serving `app` instead. `app` is imported from the
    repository root, so the django env needs PYTHONPATH set to it."""
    return [
        "sh",
        "-c",
        f'script=$(mktemp) && sed "s|^exec gunicorn .*|& {app}|" entrypoint.sh > "$script"'
        ' && exec sh "$script"',
    ]


class PublishedURLs:
    """The stack's two public addresses: nginx (http_url) and Django directly; and what
    else the native and Docker stacks share."""

    http_port: int
    django_port: int

    @property
    def http_url(self) -> str:
        return f"http://localhost:{self.http_port}"

    @property
    def django_url(self) -> str:
        return f"http://localhost:{self.django_port}"

    def reloaded(self, before: list[int], timeout: float = 60) -> list[int]:
        """Wait until Gunicorn has replaced each of the workers `before` (a saved file
        reloads them while DEBUG is on), each new one has started serving and answers;
        their PIDs.

        Each new worker must have booted, not just one of them answered: a worker's
        reloader takes its files' times when it starts and reloads only on a later change,
        so a file saved while a worker still imports the app would never reload it (the
        next step's save went unnoticed, CI run 7)."""
        expected = int(self.django_env()["WEB_CONCURRENCY"])
        deadline = time.monotonic() + timeout
        while True:
            workers = self.gunicorn_workers()
            if len(workers) == expected and not set(workers) & set(before):
                log = self.log_tail("django", 500)
                if all(f"Started server process [{pid}]" in log for pid in workers):
                    with contextlib.suppress(OSError):
                        health = urllib.request.urlopen(self.http_url + "/healthz", timeout=5)
                        if health.status == 200:
                            # The reloaders' first pass, begun before the server started
                            # (Gunicorn's reloader polls each second).
                            time.sleep(RELOADER_INTERVAL)
                            return workers
            if time.monotonic() > deadline:
                raise StackError(f"workers {before} not replaced after {timeout}s: {workers}")
            time.sleep(0.5)


class NativeStack(PublishedURLs):
    """The four services as local processes, all state under one run directory. nginx's
    per-address limits are lifted (ONE_ADDRESS_LOAD) unless `address_limits`."""

    def __init__(
        self,
        run_dir: Path | None = None,
        http_port: int | None = None,
        django_port: int | None = None,
        django_env: dict[str, str] | None = None,
        compose_files: tuple[Path, ...] = (compose.COMPOSE_FILE,),
        django_command: list[str] | None = None,
        address_limits: bool = False,
    ) -> None:
        self.nginx_env = {} if address_limits else dict(ONE_ADDRESS_LOAD)
        # What the django service runs (default: its entrypoint.sh); benchmarks swap it.
        self.django_command = django_command or ["sh", "entrypoint.sh"]
        self.services = compose.load(*compose_files)
        self.run_dir = Path(run_dir or tempfile.mkdtemp(prefix="channels-stack-"))
        self.owns_run_dir = run_dir is None
        self.http_port = http_port or free_port()
        self.django_port = django_port or free_port()
        self.mysql_port = free_port()
        self.redis_port = free_port()
        self.nginx_status_port = free_port()
        # The workers' metrics files, one stack's apart from another's, in memory as in
        # the containers (entrypoint.sh says why).
        shm = Path("/dev/shm")
        base = shm if shm.is_dir() else self.run_dir
        self.metrics_dir = base / f"prometheus-multiproc-{self.run_dir.name}"
        self.extra_django_env = django_env or {}
        self.user = pwd.getpwuid(os.geteuid()).pw_name
        self.logs = self.run_dir / "logs"
        self.static_root = self.run_dir / "static"
        self.executors: dict[str, SimpleExecutor] = {}
        self._log_files: list = []

    def django_env(self) -> dict[str, str]:
        """The django service's environment with the other services' local addresses."""
        env = self.services["django"].env()
        env.update(
            MYSQL_HOST=LOCALHOST,
            MYSQL_PORT=str(self.mysql_port),
            REDIS_URL=with_host_port(env["REDIS_URL"], LOCALHOST, self.redis_port),
            DJANGO_PORT=str(self.django_port),
            STATIC_ROOT=str(self.static_root),
        )
        env.update(self.extra_django_env)
        return env

    # -- lifecycle -------------------------------------------------------------------
    ORDER = ("mysql", "redis", "django", "nginx")

    def start(self, services: tuple[str, ...] = ORDER) -> NativeStack:
        """Start `services` in order, each once its health check passes."""
        try:
            for name in services:
                self.start_service(name)
        except BaseException:
            self.stop()
            raise
        return self

    def start_service(self, name: str) -> None:
        self.binaries = getattr(self, "binaries", None) or require_binaries()
        self.logs.mkdir(parents=True, exist_ok=True)
        executor = getattr(self, f"_start_{name}")()
        try:
            executor.start()
        except Exception as error:
            with contextlib.suppress(Exception):  # the start failure is what to report
                executor.stop()
            raise StackError(
                f"{name} did not become ready: {error}\n--- {self.log_path(name)}\n"
                + self.log_tail(name)
            ) from error
        self.executors[name] = executor

    def stop_service(self, name: str) -> None:
        self.executors.pop(name).stop()

    def is_running(self, name: str) -> bool:
        return name in self.executors

    def restart_service(self, name: str) -> None:
        self.stop_service(name)
        self.start_service(name)

    def gunicorn_workers(self) -> list[int]:
        """PIDs of the Uvicorn worker processes under the Gunicorn master."""
        import psutil

        master = psutil.Process(self.executors["django"].process.pid)
        return sorted(child.pid for child in master.children())

    def stop(self) -> None:
        """Stop everything still running, newest first."""
        for name in reversed(list(self.executors)):
            executor = self.executors.pop(name)
            try:
                executor.stop()
            except Exception as error:  # keep stopping the others
                print(f"stopping {name}: {error}", file=sys.stderr)
        for log_file in self._log_files:
            log_file.close()
        self._log_files.clear()
        shutil.rmtree(self.metrics_dir, ignore_errors=True)
        if self.owns_run_dir:
            shutil.rmtree(self.run_dir, ignore_errors=True)

    def __enter__(self) -> NativeStack:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def log_path(self, name: str) -> Path:
        return self.logs / f"{name}.log"

    def log_tail(self, name: str, lines: int = 40) -> str:
        path = self.log_path(name)
        return (
            "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
            if path.exists()
            else ""
        )

    def _log(self, name: str):
        log_file = open(self.log_path(name), "ab")  # noqa: SIM115 - closed in stop()
        self._log_files.append(log_file)
        return {"stdout": log_file, "stderr": subprocess.STDOUT, "stdin": subprocess.DEVNULL}

    # -- services --------------------------------------------------------------------
    def _start_mysql(self) -> SimpleExecutor:
        service = self.services["mysql"]
        env = service.env()
        my_cnf = service.bind_source("/etc/mysql/conf.d/my.cnf")
        base = self.run_dir / "mysql"
        datadir = base / "data"
        datadir.mkdir(parents=True, exist_ok=True)
        password_file = base / "root-password"
        root_password = (
            env.get("MYSQL_ROOT_PASSWORD")
            or (password_file.exists() and password_file.read_text())
            or secrets.token_urlsafe(24)
        )
        password_file.write_text(root_password)
        password_file.chmod(0o600)
        init_file = base / "init.sql"
        init_file.write_text(mysql_init_sql(env, root_password))
        init_file.chmod(0o600)
        if (datadir / "mysql").is_dir():  # initialised already: a restart keeps the data
            return self._mysql_executor(my_cnf, base, datadir, init_file)
        installed = subprocess.run(
            [
                self.binaries["mariadb-install-db"],
                "--no-defaults",
                f"--datadir={datadir}",
                f"--user={self.user}",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
            ],
            capture_output=True,
            text=True,
        )
        self.log_path("mysql").write_text(installed.stdout + installed.stderr)
        if installed.returncode:
            raise StackError(f"mariadb-install-db failed:\n{installed.stdout}{installed.stderr}")
        return self._mysql_executor(my_cnf, base, datadir, init_file)

    def _mysql_executor(self, my_cnf: Path, base: Path, datadir: Path, init_file: Path):
        command = [
            self.binaries["mariadbd"],
            f"--defaults-file={my_cnf}",
            f"--datadir={datadir}",
            f"--socket={base / 'mysqld.sock'}",
            f"--pid-file={base / 'mysqld.pid'}",
            f"--port={self.mysql_port}",
            f"--bind-address={LOCALHOST}",
            f"--init-file={init_file}",
            f"--user={self.user}",
        ]
        return TCPExecutor(
            command, host=LOCALHOST, port=self.mysql_port, timeout=60, **self._log("mysql")
        )

    def _start_redis(self) -> SimpleExecutor:
        service = self.services["redis"]
        password = service.env().get("REDIS_PASSWORD", "")
        data = self.run_dir / "redis"
        data.mkdir(exist_ok=True)
        command = [
            self.binaries["redis-server"],
            str(service.bind_source("/usr/local/etc/redis/redis.conf")),
            "--port",
            str(self.redis_port),
            "--bind",
            LOCALHOST,
            "--dir",
            str(data),
            "--daemonize",
            "no",
        ]
        if password:
            command += ["--requirepass", password]
        return TCPExecutor(
            command, host=LOCALHOST, port=self.redis_port, timeout=30, **self._log("redis")
        )

    def _start_django(self) -> SimpleExecutor:
        service = self.services["django"]
        # The workers' metrics, this stack's own (made here for commands that start
        # Gunicorn without entrypoint.sh too); only the server's: a one-off manage.py
        # command counts in its own memory, as `docker compose exec` does.
        self.metrics_dir.mkdir(parents=True, exist_ok=True)
        env = {"PROMETHEUS_MULTIPROC_DIR": str(self.metrics_dir), **self.django_env()}
        # Programs of the virtualenv running this runner (Poetry's) come first, as
        # /opt/venv/bin does in the image.
        path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
        url = f"http://{LOCALHOST}:{self.django_port}{service.healthcheck_path()}"
        return ServiceHTTPExecutor(
            self.django_command,
            url=url,
            status="200",
            method="GET",
            cwd=str(service.build_context()),
            envvars={**env, "PATH": path},
            # Gunicorn's graceful_timeout plus a margin, like stop_grace_period.
            timeout=int(env.get("GRACEFUL_TIMEOUT", "30")) + 90,
            **self._log("django"),
        )

    def write_nginx_config(self) -> Path:
        """Render nginx/templates for local addresses under a native nginx.conf."""
        service = self.services["nginx"]
        templates = service.mounted_dir("/etc/nginx/templates")
        prefix = self.run_dir / "nginx"
        conf_d = prefix / "conf.d"
        conf_d.mkdir(parents=True, exist_ok=True)
        self.logs.mkdir(parents=True, exist_ok=True)
        env = service.env()
        env.update(
            NGINX_PORT=f"{LOCALHOST}:{self.http_port}",
            NGINX_STATUS_PORT=f"{LOCALHOST}:{self.nginx_status_port}",
            DJANGO_HOST=LOCALHOST,
            DJANGO_PORT=str(self.django_port),
            STATIC_ROOT=str(self.static_root),
            # The image derives it from resolv.conf; nginx never asks it here, since
            # DJANGO_HOST is an address, not a name.
            NGINX_LOCAL_RESOLVERS=LOCALHOST,
        )
        env.update(self.nginx_env)
        for name, template in templates:
            if name.endswith(".template"):
                rendered = render_template(template.read_text(), env)
                (conf_d / name.removesuffix(".template")).write_text(rendered)
        main = prefix / "nginx.conf"
        main.write_text(
            self.native_nginx_conf(service.bind_source("/etc/nginx/nginx.conf"), conf_d)
        )
        return main

    def native_nginx_conf(self, source: Path, conf_d: Path) -> str:
        """The container's nginx.conf with this machine's paths: pid, logs, the rendered
        templates, temp folders; `user` only when started as root; in the foreground."""
        prefix, temp = conf_d.parent, conf_d.parent / "temp"
        temp.mkdir(parents=True, exist_ok=True)
        user = f"user {self.user};" if os.geteuid() == 0 else ""
        temp_paths = "".join(
            f"\n    {kind}_temp_path {temp}/{kind.removesuffix('_body')};"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        replacements = [
            (r"^user\s+[^;]*;", user),
            (r"^pid\s+[^;]*;", f"pid {prefix / 'nginx.pid'};"),
            (r"^error_log\s+[^;]*;", "error_log stderr notice;"),
            (r"^(\s*)access_log\s+[^;]*;", rf"\g<1>access_log {self.logs / 'nginx-access.log'};"),
            (r"^(\s*)include\s+/etc/nginx/conf\.d/\*\.conf;", rf"\g<1>include {conf_d}/*.conf;"),
            # The container's entrypoint writes it from the CPU limit; natively there is
            # none, so one worker per CPU, which is what that script writes without one.
            (r"^include\s+/etc/nginx/conf\.d/worker_processes\.main;", "worker_processes auto;"),
            (r"^http\s*\{", "http {" + temp_paths),
        ]
        text = source.read_text()
        for pattern, replacement in replacements:
            text, count = re.subn(pattern, replacement, text, count=1, flags=re.MULTILINE)
            if not count:
                raise StackError(f"{source}: no line matching {pattern!r} to adapt")
        return "daemon off;\n" + text

    def nginx_test(self) -> subprocess.CompletedProcess:
        main = self.write_nginx_config()
        binary = require_binaries()["nginx"]
        return subprocess.run(
            [binary, "-t", "-c", str(main), "-p", str(main.parent)], capture_output=True, text=True
        )

    def _start_nginx(self) -> SimpleExecutor:
        main = self.write_nginx_config()
        url = f"http://{LOCALHOST}:{self.http_port}{self.services['nginx'].healthcheck_path()}"
        return HTTPExecutor(
            [self.binaries["nginx"], "-c", str(main), "-p", str(main.parent)],
            url=url,
            status="200",
            method="GET",
            timeout=30,
            **self._log("nginx"),
        )


def main() -> int:
    parser = reports.parser(__doc__)
    parser.add_argument(
        "--run-dir", type=Path, help="keep all state here (default: a temp dir, removed on exit)"
    )
    parser.add_argument(
        "-f",
        "--file",
        dest="files",
        type=Path,
        action="append",
        help="compose files, as for `docker compose -f` (default: docker-compose.yml)",
    )
    args = parser.parse_args()
    files = tuple(path.resolve() for path in args.files or [compose.COMPOSE_FILE])
    http_port = int(os.environ.get("HTTP_PORT", "8000"))
    django_port = int(os.environ.get("DJANGO_PORT", "8080"))

    def terminate(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, terminate)
    if args.run_dir:
        args.run_dir.mkdir(parents=True, exist_ok=True)
    stack = NativeStack(
        run_dir=args.run_dir,
        http_port=http_port,
        django_port=django_port,
        compose_files=files,
        address_limits=True,
    )
    print(
        f"starting MariaDB, Redis, Django and nginx (state and logs in {stack.run_dir}) ...",
        flush=True,
    )
    try:
        stack.start()
        print(
            f"stack ready: {stack.http_url} (nginx)  {stack.django_url} (Django directly)\n"
            f"logs: {stack.logs}    stop with Ctrl-C",
            flush=True,
        )
        while all(executor.running() for executor in stack.executors.values()):
            time.sleep(0.5)
        dead = [name for name, executor in stack.executors.items() if not executor.running()]
        print(f"{', '.join(dead)} exited; stopping the stack. Last log lines:", file=sys.stderr)
        for name in dead:
            print(f"--- {name}\n{stack.log_tail(name)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("stopping ...", flush=True)
        return 0
    finally:
        stack.stop()


if __name__ == "__main__":
    sys.exit(main())
