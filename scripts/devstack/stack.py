"""The Hub stack — four subgraphs, the Celery worker, the router — as data.

`scripts/up` and the integration-test fixture both build their processes here, so
the tests run exactly what a developer runs, only on other ports, with throwaway
databases and their own Redis namespace:

    backing = ensure_backing_services(DATA_DIR)
    stack = Stack.for_tests(backing, log_dir=tmp_path / "logs")
    stack.drop_databases()          # leftovers of an interrupted run
    stack.migrate()
    stack.start()
    try:
        stack.wait_ready(timeout=120)
        ...  # stack.graphql_url, stack.urls["identity"], stack.env, stack.database_names
    finally:
        stack.stop()
        stack.drop_databases()
        stack.delete_redis_keys()

A failure to start raises StartupFailed with the last log lines of the culprit; every
process's output is in log_dir/<name>.log (migrate.log for the migrations).
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Self

from .backing import Backing, drop_databases
from .paths import REPO_ROOT
from .ports import check_ports_free, free_port
from .processes import ManagedProcess, StartupFailed, Supervisor, tail

SUBGRAPHS = ("identity", "content", "communication", "workflow")
# What subgraphs/common/settings.py and the subgraphs' own settings default to.
DEFAULT_DATABASE_NAMES = {
    "identity": "identity_service",
    "content": "content_service",
    "communication": "communication_service",
    "workflow": "workflow_intelligence_service",
}
WORKER_APP = "subgraphs.communication.tasks"
# Workflow's worker computes suggestions (classification, summaries, key fields, routing).
WORKFLOW_WORKER_APP = "subgraphs.workflow.tasks"
# Without mingle/gossip a worker neither waits for nor talks to other workers at startup.
# Celery logs "<name> ready." once it consumes (cheaper than polling `celery inspect ping`,
# which imports the whole app each time); in production mode the line is a JSON object.
CELERY_READY = r'\bready\.("\})?\s*$'
WORKER_OPTIONS = ["--loglevel=INFO", "--concurrency=2", "--without-mingle", "--without-gossip"]


@dataclass(frozen=True)
class StackPorts:
    router: int = 8000
    identity: int = 8001
    content: int = 8002
    communication: int = 8003
    workflow: int = 8004

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> StackPorts:
        """The ports settings.py would read: HUB_ROUTER_PORT, HUB_<SERVICE>_PORT."""
        ports = {
            name: int(environ.get(f"HUB_{name.upper()}_PORT", default))
            for name, default in asdict(cls()).items()
        }
        return cls(**ports)

    @classmethod
    def free(cls) -> StackPorts:
        """Ports free right now: parallel test runs on one machine then never collide."""
        chosen: set[int] = set()
        while len(chosen) < 5:
            chosen.add(free_port())
        return cls(*sorted(chosen))

    def of(self, service: str) -> int:
        return getattr(self, service)


class Stack:
    """Router, subgraphs and worker for given ports and environment.

    env: variables applied last, over both the inherited and the computed ones.
    inherit_service_env=False drops inherited HUB_<SERVICE>_* and HUB_ROUTER_* variables,
    so that nothing from the caller's shell (say HUB_IDENTITY_DATABASE_URL) can point a
    test stack at a developer's data.
    """

    def __init__(
        self,
        backing: Backing,
        *,
        ports: StackPorts | None = None,
        env: Mapping[str, str] | None = None,
        log_dir: Path,
        run_dir: Path | None = None,
        host: str = "127.0.0.1",
        inherit_service_env: bool = True,
        throwaway_databases: bool = False,
        die_with_parent: bool = False,
        root: Path = REPO_ROOT,
    ):
        self.backing = backing
        self.ports = ports or StackPorts()
        self.log_dir = log_dir
        self.run_dir = run_dir
        self.host = host
        self.root = root
        self.throwaway_databases = throwaway_databases
        self.die_with_parent = die_with_parent
        self.env = self._environment(env or {}, inherit_service_env)
        self.supervisor: Supervisor | None = None

    @classmethod
    def for_tests(
        cls,
        backing: Backing,
        *,
        log_dir: Path,
        ports: StackPorts | None = None,
        database_prefix: str = "hub_test",
        redis_namespace: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> Self:
        """A stack on free ports with databases <prefix>_<service> and a fresh Redis namespace."""
        namespace = redis_namespace or f"hub_test_{secrets.token_hex(4)}"
        isolation: dict[str, str] = {"HUB_ENV": "development"}
        for service in SUBGRAPHS:
            isolation[f"HUB_{service.upper()}_DATABASE_NAME"] = f"{database_prefix}_{service}"
            isolation[f"HUB_{service.upper()}_REDIS_NAMESPACE"] = f"{namespace}:{service}"
        isolation["HUB_EVENTS_STREAM"] = f"{namespace}:events"
        return cls(
            backing,
            ports=ports or StackPorts.free(),
            env={**isolation, **(env or {})},
            log_dir=log_dir,
            inherit_service_env=False,
            throwaway_databases=True,
            # A test run killed by a timeout must not leave a stack behind.
            die_with_parent=True,
        )

    # --- what runs --------------------------------------------------------------------

    @property
    def urls(self) -> dict[str, str]:
        """Base URL of the router and of each subgraph, as a client on this machine sees it."""
        host = _client_host(self.host)
        names = ("router", *SUBGRAPHS)
        return {name: f"http://{host}:{self.ports.of(name)}" for name in names}

    @property
    def graphql_url(self) -> str:
        return f"{self.urls['router']}/graphql"

    @property
    def worker_name(self) -> str:
        # Unique per stack: a dev stack and a test stack may share one Redis.
        return f"hub-worker-{self.ports.communication}@{socket.gethostname()}"

    @property
    def workflow_worker_name(self) -> str:
        return f"hub-workflow-worker-{self.ports.workflow}@{socket.gethostname()}"

    @property
    def database_names(self) -> dict[str, str]:
        return {
            service: self.env.get(f"HUB_{service.upper()}_DATABASE_NAME", default)
            for service, default in DEFAULT_DATABASE_NAMES.items()
        }

    def processes(self) -> list[ManagedProcess]:
        python = sys.executable  # the venv's interpreter: the same one runs this code
        celery = str(Path(python).parent / "celery")
        procs = [
            ManagedProcess(
                name=service,
                argv=[python, "-m", f"subgraphs.{service}"],
                env=self.env,
                cwd=self.root,
                ready_url=f"{self.urls[service]}/ready",
            )
            for service in SUBGRAPHS
        ]
        procs.append(
            ManagedProcess(
                name="worker",
                argv=[celery, "-A", WORKER_APP, "worker", "-n", self.worker_name, *WORKER_OPTIONS],
                env=self.env,
                cwd=self.root,
                ready_log=CELERY_READY,
            )
        )
        procs.append(
            ManagedProcess(
                name="workflow-worker",
                # One process: training a classifier takes a core while it runs.
                argv=[
                    celery,
                    "-A",
                    WORKFLOW_WORKER_APP,
                    "worker",
                    "-n",
                    self.workflow_worker_name,
                    *WORKER_OPTIONS,
                    "--concurrency=1",
                ],
                env=self.env,
                cwd=self.root,
                ready_log=CELERY_READY,
            )
        )
        procs.append(
            ManagedProcess(
                name="events",
                # Communication's consumer of the domain-event stream (notifications from
                # identity's and content's events).
                argv=[python, "-m", "subgraphs.communication", "consume-events"],
                env=self.env,
                cwd=self.root,
                ready_log=r"consuming events from ",
            )
        )
        procs.append(
            ManagedProcess(
                name="workflow-scheduler",
                # Workflow's durable timers, API requests of actions and incoming events.
                argv=[python, "-m", "subgraphs.workflow", "scheduler"],
                env=self.env,
                cwd=self.root,
                ready_log=r"scheduler running",
            )
        )
        procs.append(
            ManagedProcess(
                name="router",
                argv=[str(self.root / "router" / "start")],
                env=self.env,
                cwd=self.root,
                ready_url=f"{self.urls['router']}/readiness",
            )
        )
        return procs

    def wanted_ports(self) -> list[tuple[str, str, int]]:
        return [(name, self.host, self.ports.of(name)) for name in ("router", *SUBGRAPHS)]

    # --- lifecycle ----------------------------------------------------------------------

    def migrate(self, *, echo: bool = False) -> None:
        """Create the databases if missing and run every subgraph's migrations."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_dir / "migrate.log"
        argv = [sys.executable, "-m", "subgraphs", "migrate"]
        if echo:
            result = subprocess.run(argv, cwd=self.root, env=self.env)
        else:
            with log_path.open("wb") as log:
                result = subprocess.run(
                    argv, cwd=self.root, env=self.env, stdout=log, stderr=subprocess.STDOUT
                )
        if result.returncode:
            detail = "" if echo else f"\n--- {log_path} ---\n{tail(log_path)}"
            raise StartupFailed(f"migrations failed (exit {result.returncode}){detail}")

    def start(self, *, echo: bool = False, check_ports: bool = True) -> Supervisor:
        """Start every process. echo=True: prefixed output on stdout (and log files)."""
        if check_ports:
            check_ports_free(self.wanted_ports())
        self.supervisor = Supervisor(
            self.processes(),
            log_dir=self.log_dir,
            run_dir=self.run_dir,
            echo=echo,
            die_with_parent=self.die_with_parent,
        )
        if self.run_dir is not None:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            self.describe_to(self.run_dir / "stack.json")
        try:
            self.supervisor.start()
        except BaseException:
            self.supervisor.stop()
            raise
        return self.supervisor

    def wait_ready(self, timeout: float = 120, *, progress: bool = False) -> None:
        assert self.supervisor is not None, "start() first"
        self.supervisor.wait_ready(timeout, progress=progress)

    def stop_service(self, name: str) -> None:
        """Stop one process of the running stack ("workflow", "router", ...)."""
        assert self.supervisor is not None, "start() first"
        self.supervisor.stop_one(name)

    def restart_service(self, name: str, timeout: float = 60) -> None:
        """Start a stopped process again; returns once it is ready."""
        assert self.supervisor is not None, "start() first"
        self.supervisor.restart_one(name, timeout)

    def stop(self) -> None:
        if self.supervisor is not None:
            self.supervisor.stop()
        if self.run_dir is not None:
            (self.run_dir / "stack.json").unlink(missing_ok=True)

    def drop_databases(self) -> None:
        if not self.throwaway_databases:
            raise RuntimeError("refusing to drop databases of a stack not made by for_tests()")
        drop_databases(self.backing.postgres_url, self.database_names.values())

    def delete_redis_keys(self) -> int:
        """Delete every key of this stack's Redis namespaces (test stacks only)."""
        if not self.throwaway_databases:
            raise RuntimeError("refusing to delete Redis keys of a stack not made by for_tests()")
        import redis

        client = redis.Redis.from_url(self.backing.redis_url)
        deleted = 0
        try:
            for service in SUBGRAPHS:
                namespace = self.env[f"HUB_{service.upper()}_REDIS_NAMESPACE"]
                for key in client.scan_iter(match=f"{namespace}:*", count=500):
                    deleted += client.delete(key)
        finally:
            client.close()
        return deleted

    # --- the record `status` and `down` read -----------------------------------------

    def describe_to(self, path: Path) -> None:
        description = {
            "ports": asdict(self.ports),
            "host": self.host,
            "backing": asdict(self.backing),
        }
        path.write_text(json.dumps(description, indent=2) + "\n")

    @classmethod
    def described_by(cls, path: Path, **kwargs: Any) -> Stack | None:
        try:
            data = json.loads(path.read_text())
            backing = Backing(**data["backing"])
            ports = StackPorts(**data["ports"])
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return cls(backing, ports=ports, host=data.get("host", "127.0.0.1"), **kwargs)

    # --- environment --------------------------------------------------------------------

    def _environment(self, extra: Mapping[str, str], inherit_service_env: bool) -> dict[str, str]:
        env = dict(os.environ)
        if not inherit_service_env:
            scoped = tuple(f"HUB_{name.upper()}_" for name in ("router", *SUBGRAPHS))
            env = {k: v for k, v in env.items() if not k.startswith(scoped)}
        env.setdefault("HUB_ENV", "development")
        env.update(self.backing.env())
        env["PYTHONUNBUFFERED"] = "1"  # log lines appear when written, not when a buffer fills
        env["HUB_ROUTER_HOST"] = self.host
        env["HUB_ROUTER_PORT"] = str(self.ports.router)
        for service in SUBGRAPHS:
            prefix = f"HUB_{service.upper()}_"
            env[prefix + "HOST"] = self.host
            env[prefix + "PORT"] = str(self.ports.of(service))
            env[prefix + "URL"] = self.urls[service]
        # Webhooks to a receiver on this machine (refused elsewhere: no private addresses).
        env.setdefault("HUB_COMMUNICATION_WEBHOOK_ALLOWED_HOSTS", "127.0.0.1,localhost")
        # Workflow reaches the others' APIs (request actions, documents' text) on this stack.
        env["HUB_WORKFLOW_SERVICE_URLS"] = json.dumps(
            {service: self.urls[service] for service in SUBGRAPHS if service != "workflow"}
        )
        # Services verify tokens with the keys of this stack's identity, not the default's.
        env["HUB_JWKS_URL"] = f"{self.urls['identity']}/.well-known/jwks.json"
        env.update(extra)
        return env


def _client_host(bind_host: str) -> str:
    return "127.0.0.1" if bind_host in ("0.0.0.0", "::", "") else bind_host
