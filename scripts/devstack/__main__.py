"""Command line of the dev stack: python -m devstack {up,down,status,migrate,backing}."""

from __future__ import annotations

import argparse
import os
import shlex
import sys

from .backing import BackingError, ensure_backing_services, stop_private_servers
from .paths import DATA_DIR, LOG_DIR, RUN_DIR
from .ports import PortsInUse, check_ports_free
from .processes import (
    StartupFailed,
    StopRequested,
    read_pid_records,
    stop_recorded,
    write_pid_file,
)
from .stack import SUBGRAPHS, Stack, StackPorts
from .status import check_all, render, stack_for_status

SUPERVISOR = "supervisor"  # pid file of a foreground `up`, which `down` asks to stop


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="devstack", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("up", help="start PostgreSQL/Redis, migrate, run the stack")
    up.add_argument("--detach", "-d", action="store_true", help="return once ready")
    up.add_argument("--timeout", type=float, default=180, help="seconds to become ready")
    up.add_argument("--no-migrate", action="store_true")
    down = commands.add_parser("down", help="stop the stack and private PostgreSQL/Redis")
    down.add_argument(
        "--keep-backing", action="store_true", help="leave private PostgreSQL/Redis running"
    )
    commands.add_parser("status", help="health of every service; non-zero if one is down")
    commands.add_parser("migrate", help="create databases and run migrations")
    backing = commands.add_parser("backing", help="provide PostgreSQL/Redis, print their URLs")
    backing.add_argument("--shell", action="store_true", help="as `export` lines for eval")
    args = parser.parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except (BackingError, PortsInUse, StartupFailed) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # before the supervisor took over the signals, e.g. migrating
        return 130


def cmd_up(args: argparse.Namespace) -> int:
    running = [r for r in read_pid_records(RUN_DIR) if r.is_running()]
    if running:
        names = ", ".join(f"{r.name} (pid {r.pid})" for r in running)
        print(
            f"The stack is already running: {names}.\nStop it with scripts/down.", file=sys.stderr
        )
        return 1
    ports = StackPorts.from_env(os.environ)
    # Before anything slow, so that a conflict is reported at once.
    check_ports_free([(name, "127.0.0.1", ports.of(name)) for name in ("router", *SUBGRAPHS)])
    stack = Stack(ensure_backing_services(DATA_DIR), ports=ports, log_dir=LOG_DIR, run_dir=RUN_DIR)
    if not args.no_migrate:
        stack.migrate(echo=True)
    if args.detach:
        return run_stack(stack, args)
    RUN_DIR.mkdir(parents=True, exist_ok=True)
    write_pid_file(RUN_DIR, SUPERVISOR, os.getpid(), sys.argv)
    try:
        return run_stack(stack, args)
    finally:
        (RUN_DIR / f"{SUPERVISOR}.pid").unlink(missing_ok=True)


def run_stack(stack: Stack, args: argparse.Namespace) -> int:
    supervisor = stack.start(echo=not args.detach)
    supervisor.install_signal_handlers()
    try:
        try:
            stack.wait_ready(args.timeout, progress=True)
        except StartupFailed as exc:
            supervisor.say(f"startup failed: {exc}")
            stack.stop()
            return 1
        except StopRequested:
            supervisor.say("stopping…")
            stack.stop()
            return 130
        supervisor.say(ready_banner(stack, args.detach))
        if args.detach:
            return 0
        code = supervisor.wait_until_exit()
        supervisor.say("stopping…")
        stack.stop()
        return code
    except BaseException:
        stack.stop()
        raise


def ready_banner(stack: Stack, detached: bool) -> str:
    urls = stack.urls

    def local(url: str) -> str:
        return url.replace("//127.0.0.1:", "//localhost:")

    lines = ["Hub is ready.", f"  GraphQL (router)  {local(urls['router'])}/graphql"]
    for service in SUBGRAPHS:
        base = local(urls[service])
        lines.append(f"  {service:<17} {base}/graphql   {base}/docs")
    lines.append(f"  logs              {LOG_DIR}/<name>.log")
    lines.append("Stop with scripts/down." if detached else "Ctrl-C stops everything.")
    return "\n".join(lines)


def cmd_down(args: argparse.Namespace) -> int:
    records = read_pid_records(RUN_DIR)
    # A foreground `up` stops its own children in order; ask it first, then sweep.
    for record in sorted(records, key=lambda r: r.name != SUPERVISOR):
        grace = 30 if record.name == SUPERVISOR else 10
        stop_recorded(record, RUN_DIR, grace=grace)
    (RUN_DIR / "stack.json").unlink(missing_ok=True)
    if not args.keep_backing:
        stop_private_servers(DATA_DIR)
    return 0


def cmd_status(_args: argparse.Namespace) -> int:
    stack = stack_for_status(DATA_DIR, RUN_DIR, LOG_DIR)
    rows = check_all(stack, RUN_DIR)
    print(render(rows, colour=sys.stdout.isatty() and "NO_COLOR" not in os.environ))
    return 0 if all(row.up for row in rows) else 1


def cmd_migrate(_args: argparse.Namespace) -> int:
    stack = Stack(
        ensure_backing_services(DATA_DIR), ports=StackPorts.from_env(os.environ), log_dir=LOG_DIR
    )
    stack.migrate(echo=True)
    return 0


def cmd_backing(args: argparse.Namespace) -> int:
    backing = ensure_backing_services(DATA_DIR, log=lambda line: print(line, file=sys.stderr))
    for name, value in backing.env().items():
        print(f"export {name}={shlex.quote(value)}" if args.shell else f"{name}={value}")
    return 0


COMMANDS = {
    "up": cmd_up,
    "down": cmd_down,
    "status": cmd_status,
    "migrate": cmd_migrate,
    "backing": cmd_backing,
}

if __name__ == "__main__":
    sys.exit(main())
