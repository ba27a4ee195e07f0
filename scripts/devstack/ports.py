"""Which ports are taken, and by whom.

A port conflict is the most common reason a dev stack fails to start. Rather than
let a service die with "address already in use" deep in its log, every port is
checked up front and the message names the process holding it, so the person can
decide what to stop. Nothing here ever stops a process.
"""

from __future__ import annotations

import errno
import os
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

_LISTEN = "0A"  # TCP state code in /proc/net/tcp*


@dataclass(frozen=True)
class PortHolder:
    pid: int | None  # None: the socket belongs to a process we may not inspect
    command: str


SERVICE_PORTS_HINT = "choose other ports with HUB_<SERVICE>_PORT / HUB_ROUTER_PORT"


class PortsInUse(Exception):
    def __init__(self, conflicts: list[tuple[str, int, PortHolder | None]], hint: str):
        self.conflicts = conflicts
        self.hint = hint
        super().__init__(self.describe())

    def describe(self) -> str:
        lines = ["These ports are already in use:"]
        for name, port, holder in self.conflicts:
            lines.append(f"  {port:>5}  wanted by {name}, held by {describe_holder(holder)}")
        lines.append(
            f"Stop those processes (the stack never stops what it did not start), or {self.hint}."
        )
        return "\n".join(lines)


def describe_holder(holder: PortHolder | None) -> str:
    if holder is None:
        return "an unknown process (not visible from /proc: another user or namespace?)"
    if holder.pid is None:
        return holder.command
    return f"pid {holder.pid}: {holder.command}"


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """True when a server could bind host:port now (as uvicorn and node do, with SO_REUSEADDR)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
    return True


def port_holder(port: int) -> PortHolder | None:
    """The process listening on a TCP port, found through /proc (as `ss -ltnp` does)."""
    inodes = _listening_inodes(port)
    if not inodes:
        return None
    for pid_dir in Path("/proc").iterdir():
        if not pid_dir.name.isdigit():
            continue
        try:
            for fd in (pid_dir / "fd").iterdir():
                target = os.readlink(fd)
                if target.startswith("socket:[") and target[8:-1] in inodes:
                    return PortHolder(int(pid_dir.name), process_command(int(pid_dir.name)))
        except OSError:  # the process ended, or is not ours to inspect
            continue
    return PortHolder(None, "a process whose file descriptors are not readable by this user")


def check_ports_free(
    wanted: Iterable[tuple[str, str, int]], hint: str = SERVICE_PORTS_HINT
) -> None:
    """Raise PortsInUse naming every (name, host, port) that cannot be bound."""
    taken = [(name, port) for name, host, port in wanted if not port_is_free(port, host)]
    conflicts = [(name, port, port_holder(port)) for name, port in taken]
    if conflicts:
        raise PortsInUse(conflicts, hint)


def free_port(host: str = "127.0.0.1") -> int:
    """A port the kernel considers free right now (another process may still take it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def process_command(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return "?"
    return raw.replace(b"\0", b" ").decode(errors="replace").strip() or "?"


def _listening_inodes(port: int) -> set[str]:
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local_port = int(fields[1].rsplit(":", 1)[1], 16)
            if local_port == port and fields[3] == _LISTEN:
                inodes.add(fields[9])
    return inodes
