"""A small process supervisor, in the spirit of honcho / docker compose.

Each process runs in its own session (so its own process group): a terminal's Ctrl-C
reaches only the supervisor, which then stops every group in a known order — SIGTERM,
a grace period, SIGKILL — instead of each child racing to print its own traceback.
Because children may outlive the supervisor (detached mode, or a supervisor killed
with -9), every start is recorded in a pid file with the kernel's start time of the
process; `stop_recorded` refuses to signal a pid whose start time no longer matches,
so a recycled pid is never mistaken for ours.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

STOP_GRACE_SECONDS = 10.0
_COLOURS = ("36", "33", "32", "35", "34", "96", "93", "92", "95", "94")  # ANSI foregrounds
_SETPRIV = shutil.which("setpriv")  # util-linux; sets PR_SET_PDEATHSIG, then execs
# Proxies from the environment must not apply to probes of our own loopback servers.
_HTTP = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass
class ManagedProcess:
    name: str
    argv: Sequence[str]
    env: Mapping[str, str]  # the complete environment of the process
    cwd: Path
    ready_url: str | None = None  # ready once this answers 200
    ready_log: str | None = None  # or once a line of its output matches this regex
    popen: subprocess.Popen | None = field(default=None, repr=False)

    def is_ready(self, log_file: Path) -> bool:
        if self.ready_url is not None:
            return http_ok(self.ready_url)
        if self.ready_log is not None:
            return log_matches(log_file, self.ready_log)
        return True


class StartupFailed(Exception):
    """A process exited, or did not become ready in time, while the stack was starting."""


class StopRequested(Exception):
    """SIGINT / SIGTERM / SIGHUP arrived while waiting."""


def http_ok(url: str, timeout: float = 2.0) -> bool:
    try:
        with _HTTP.open(url, timeout=timeout) as response:
            return response.status == 200
    except (OSError, urllib.error.URLError, ValueError):
        return False


def http_get(url: str, timeout: float = 2.0) -> tuple[int | None, str]:
    """(status, body) of a GET; status None when nothing answered."""
    try:
        with _HTTP.open(url, timeout=timeout) as response:
            return response.status, response.read(2000).decode(errors="replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(2000).decode(errors="replace")
    except (OSError, urllib.error.URLError, ValueError) as exc:
        return None, str(getattr(exc, "reason", exc))


def log_matches(log_file: Path, pattern: str) -> bool:
    try:
        text = log_file.read_text(errors="replace")
    except OSError:
        return False
    return re.search(pattern, text, re.MULTILINE) is not None


def tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


class Supervisor:
    """Starts processes, multiplexes their output, waits for readiness, stops them.

    echo=True: output goes line by line to `out` behind a coloured name prefix, and
    also to log_dir/<name>.log. echo=False: each process writes straight into its log
    file, which keeps working after the supervisor exits (detached mode, test fixtures).
    run_dir, when given, receives a pid file per process for `stop_recorded`.
    die_with_parent=True: children get SIGTERM if this process dies without stopping them
    (a test run killed by a timeout). The kernel ties this to the *thread* that started
    them, so call start() from a thread that lives as long as the stack.
    """

    def __init__(
        self,
        processes: Sequence[ManagedProcess],
        *,
        log_dir: Path,
        run_dir: Path | None = None,
        echo: bool = False,
        out: IO[str] | None = None,
        die_with_parent: bool = False,
    ):
        self.processes = list(processes)
        self.die_with_parent = die_with_parent
        self.log_dir = log_dir
        self.run_dir = run_dir
        self.echo = echo
        self.out = out or sys.stdout
        self.stop_requested = threading.Event()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._width = max((len(p.name) for p in self.processes), default=8)
        self._colour = self.out.isatty() and "NO_COLOR" not in os.environ

    # --- starting -------------------------------------------------------------------

    def start(self) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        if self.run_dir is not None:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        for index, proc in enumerate(self.processes):
            self._start_one(proc, _COLOURS[index % len(_COLOURS)])

    def _start_one(self, proc: ManagedProcess, colour: str, *, append: bool = False) -> None:
        log_path = self.log_file(proc.name)
        # Truncated by default: readiness by log line must not see an old run.
        log = log_path.open("ab" if append else "wb")
        argv = list(proc.argv)
        if self.die_with_parent and _SETPRIV:
            argv = [_SETPRIV, "--pdeathsig", "TERM", "--", *argv]
        try:
            proc.popen = subprocess.Popen(
                argv,
                cwd=proc.cwd,
                env=dict(proc.env),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE if self.echo else log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except BaseException:
            log.close()
            raise
        if self.run_dir is not None:
            write_pid_file(self.run_dir, proc.name, proc.popen.pid, proc.argv)
        if self.echo:
            thread = threading.Thread(
                target=self._pump, args=(proc, log, colour), name=f"pump-{proc.name}", daemon=True
            )
            thread.start()
            self._threads.append(thread)
        else:
            log.close()  # the child holds its own descriptor

    def _pump(self, proc: ManagedProcess, log: IO[bytes], colour: str) -> None:
        assert proc.popen is not None and proc.popen.stdout is not None
        with log:
            for raw in proc.popen.stdout:
                log.write(raw)
                log.flush()
                self.say(raw.decode(errors="replace").rstrip("\r\n"), proc.name, colour)

    def log_file(self, name: str) -> Path:
        return self.log_dir / f"{name}.log"

    def say(self, line: str, name: str = "devstack", colour: str = "1") -> None:
        label = name.ljust(self._width)
        prefix = f"\x1b[{colour}m{label} |\x1b[0m" if self._colour else f"{label} |"
        with self._lock:
            for part in line.split("\n"):
                self.out.write(f"{prefix} {part}\n")
            self.out.flush()

    # --- waiting --------------------------------------------------------------------

    def wait_ready(self, timeout: float, *, progress: bool = True, interval: float = 0.5) -> None:
        """Block until every process is ready; raise StartupFailed if one exits or time runs out."""
        started = time.monotonic()
        waiting = list(self.processes)
        last_report = started
        while waiting:
            if self.stop_requested.is_set():
                raise StopRequested
            for proc in self.processes:  # a process that was ready may have died since
                self._raise_if_exited(proc, "while the stack was starting")
            for proc in list(waiting):
                if proc.is_ready(self.log_file(proc.name)):
                    waiting.remove(proc)
                    if progress:
                        self.say(f"{proc.name} ready after {time.monotonic() - started:.1f}s")
            now = time.monotonic()
            if waiting and now - started > timeout:
                names = ", ".join(p.name for p in waiting)
                details = "\n".join(self._last_lines(p) for p in waiting)
                raise StartupFailed(f"not ready after {timeout:.0f}s: {names}\n{details}")
            if waiting and progress and now - last_report >= 5:
                last_report = now
                names = ", ".join(p.name for p in waiting)
                self.say(f"waiting for {names} ({now - started:.0f}s)")
            if waiting:
                self.stop_requested.wait(interval)

    def wait_until_exit(self) -> int:
        """Foreground mode after startup: return 0 on a stop request, 1 if a process exits."""
        while not self.stop_requested.wait(0.3):
            for proc in self.processes:
                assert proc.popen is not None
                code = proc.popen.poll()
                if code is not None:
                    self._join_pumps(timeout=1)
                    self.say(f"{proc.name} exited with code {code}; stopping the others")
                    return 1
        return 0

    def _raise_if_exited(self, proc: ManagedProcess, when: str) -> None:
        assert proc.popen is not None
        code = proc.popen.poll()
        if code is not None:
            self._join_pumps(timeout=1)  # let its last lines reach the log first
            last_lines = self._last_lines(proc)
            raise StartupFailed(f"{proc.name} exited with code {code} {when}\n{last_lines}")

    def _last_lines(self, proc: ManagedProcess) -> str:
        path = self.log_file(proc.name)
        body = "\n".join(f"    {line}" for line in tail(path).splitlines())
        return f"--- last lines of {path} ---\n{body}"

    def _join_pumps(self, timeout: float) -> None:
        for thread in self._threads:
            thread.join(timeout)

    # --- stopping -------------------------------------------------------------------

    def install_signal_handlers(self) -> None:
        """First signal: stop gracefully. A second one while stopping: kill at once."""

        def handler(signum: int, _frame: object) -> None:
            if self.stop_requested.is_set():
                self.kill_all()
                return
            self.stop_requested.set()

        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, handler)

    def stop(self, grace: float = STOP_GRACE_SECONDS) -> None:
        """SIGTERM every process group, wait up to `grace`, then SIGKILL what remains."""
        running = [p for p in self.processes if p.popen is not None]
        self._stop_groups(running, grace)
        self._join_pumps(timeout=2)
        if self.run_dir is not None:
            for proc in running:
                pid_file(self.run_dir, proc.name).unlink(missing_ok=True)

    # --- one process of a running stack (failure tests) -------------------------------

    def process(self, name: str) -> ManagedProcess:
        for proc in self.processes:
            if proc.name == name:
                return proc
        raise KeyError(name)

    def stop_one(self, name: str, grace: float = STOP_GRACE_SECONDS) -> None:
        """Stop one process (and its group); the others keep running."""
        proc = self.process(name)
        if proc.popen is not None:
            self._stop_groups([proc], grace)
        if self.run_dir is not None:
            pid_file(self.run_dir, name).unlink(missing_ok=True)

    def restart_one(self, name: str, timeout: float = 60) -> None:
        """Start a stopped process again and wait until it is ready."""
        proc = self.process(name)
        if proc.popen is not None and proc.popen.poll() is None:
            raise RuntimeError(f"{name} is still running")
        index = self.processes.index(proc)
        # A restart keeps the log of the first run unless readiness is read from the log.
        self._start_one(proc, _COLOURS[index % len(_COLOURS)], append=proc.ready_log is None)
        deadline = time.monotonic() + timeout
        while not proc.is_ready(self.log_file(name)):
            self._raise_if_exited(proc, "while restarting")
            if time.monotonic() > deadline:
                raise StartupFailed(f"{name} not ready {timeout:.0f}s after a restart")
            time.sleep(0.2)

    def _stop_groups(self, procs: Sequence[ManagedProcess], grace: float) -> None:
        popens = [proc.popen for proc in procs if proc.popen is not None]
        for popen in popens:
            _signal_group(popen.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for popen in popens:
            while True:
                # Reaped, not just a zombie in /proc: a multithreaded leader shows "Z" while
                # its other threads still exit, and until then waitpid does not return it
                # (stop_one then returned with the process "still running" for restart_one).
                reaped = popen.poll() is not None
                if reaped and not group_alive(popen.pid):
                    break
                if time.monotonic() > deadline:
                    _signal_group(popen.pid, signal.SIGKILL)
                    popen.wait()
                    break
                time.sleep(0.1)

    def kill_all(self) -> None:
        for proc in self.processes:
            if proc.popen is not None:
                _signal_group(proc.popen.pid, signal.SIGKILL)

    def exit_codes(self) -> dict[str, int | None]:
        return {p.name: (p.popen.poll() if p.popen else None) for p in self.processes}


# --- pid files: what survives the supervisor ------------------------------------------


@dataclass(frozen=True)
class PidRecord:
    name: str
    pid: int
    start_time: int  # clock ticks since boot, /proc/<pid>/stat field 22
    argv: list[str]

    def is_running(self) -> bool:
        """Same pid AND same start time: the process we started, not a recycled pid."""
        stat = _proc_stat(self.pid)
        return stat is not None and stat["start_time"] == self.start_time and stat["state"] != "Z"


def pid_file(run_dir: Path, name: str) -> Path:
    return run_dir / f"{name}.pid"


def write_pid_file(run_dir: Path, name: str, pid: int, argv: Sequence[str]) -> None:
    stat = _proc_stat(pid)
    record = {"name": name, "pid": pid, "start_time": stat["start_time"] if stat else -1}
    record["argv"] = list(argv)
    pid_file(run_dir, name).write_text(json.dumps(record) + "\n")


def read_pid_records(run_dir: Path) -> list[PidRecord]:
    records = []
    for path in sorted(run_dir.glob("*.pid")):
        try:
            data = json.loads(path.read_text())
            records.append(PidRecord(data["name"], data["pid"], data["start_time"], data["argv"]))
        except (OSError, ValueError, KeyError):
            continue  # not one of ours (e.g. a plain pid file written by redis-server)
    return records


def stop_recorded(
    record: PidRecord, run_dir: Path, grace: float = STOP_GRACE_SECONDS, log: Callable = print
) -> None:
    """Stop a process started by an earlier command, if it is still that process."""
    if record.is_running():
        # Our processes lead their own group; then the whole group goes (node, celery's pool).
        stat = _proc_stat(record.pid)  # None when it exited meanwhile
        leads_group = stat is not None and stat["pgrp"] == record.pid

        def send(signum: int) -> None:
            if leads_group:
                _signal_group(record.pid, signum)
            else:
                os.kill(record.pid, signum)

        def alive() -> bool:
            return group_alive(record.pid) if leads_group else record.is_running()

        log(f"stopping {record.name} (pid {record.pid})")
        send(signal.SIGTERM)
        deadline = time.monotonic() + grace
        while alive() and time.monotonic() < deadline:
            time.sleep(0.1)
        if alive():
            log(f"{record.name} did not stop within {grace:.0f}s; sending SIGKILL")
            send(signal.SIGKILL)
    pid_file(run_dir, record.name).unlink(missing_ok=True)


def process_alive_with(pid: int, needles: Sequence[str]) -> bool:
    """True if pid runs (not a zombie) and its command line contains every needle."""
    stat = _proc_stat(pid)
    if stat is None or stat["state"] == "Z":
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return False
    return all(needle in cmdline for needle in needles)


def group_alive(pgid: int) -> bool:
    """True while any non-zombie process remains in the process group."""
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            stat = _proc_stat(int(entry.name))
            if stat is not None and stat["pgrp"] == pgid and stat["state"] != "Z":
                return True
    return False


def _signal_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


def _proc_stat(pid: int) -> dict[str, int | str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name is in parentheses and may itself contain spaces or ')'.
    fields = raw[raw.rindex(")") + 2 :].split()
    return {"state": fields[0], "pgrp": int(fields[2]), "start_time": int(fields[19])}
