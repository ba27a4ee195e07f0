"""wrk on loopback, driven by a Lua script that picks a random request per call.

Each workload is a file of requests, one a line: `<Authorization header>\\t<JSON body>`.
Different variables (ids, users, search words) on every line keep the router from
merging identical in-flight requests, and a response with GraphQL `errors` (or not 200)
counts as an error, so a failing workload cannot pass for a fast one.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

LUA = r"""
local auths, bodies, path = {}, {}, "/graphql"
local threads = {}
errors = 0

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  path = args[2]
  for line in io.lines(args[1]) do
    local tab = line:find("\t", 1, true)
    auths[#auths + 1] = line:sub(1, tab - 1)
    bodies[#bodies + 1] = line:sub(tab + 1)
  end
  math.randomseed(os.time() + (tonumber(tostring({}):match("0x(%x+)"), 16) or 0))
end

function request()
  local i = math.random(#bodies)
  local headers = { ["Content-Type"] = "application/json" }
  if auths[i] ~= "" then headers["Authorization"] = auths[i] end
  return wrk.format("POST", path, headers, bodies[i])
end

function response(status, headers, body)
  if status ~= 200 or body:find('"errors"', 1, true) then
    errors = errors + 1
    if errors <= 3 then  -- the first few, for the report
      io.write("BENCH-ERROR " .. status .. " " .. body:sub(1, 300):gsub("\n", " ") .. "\n")
    end
  end
end

function done(summary, latency, requests)
  local errs = 0
  for _, t in ipairs(threads) do errs = errs + t:get("errors") end
  io.write(string.format(
    'BENCH-RESULT {"requests": %d, "duration_us": %d, "errors": %d, "socket_errors": %d, ' ..
    '"mean_us": %.1f, "p50_us": %d, "p95_us": %d, "p99_us": %d}\n',
    summary.requests, summary.duration, errs,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency.mean, latency:percentile(50), latency:percentile(95), latency:percentile(99)))
end
"""


@dataclass(frozen=True)
class Result:
    requests: int
    seconds: float
    errors: int
    mean_ms: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    error_samples: tuple[str, ...] = ()
    # Milliseconds of CPU per request by process (router, a subgraph, postgres, machine):
    # filled in by the measurement when it watches the processes (cpu.py).
    cpu_ms: dict[str, float] = field(default_factory=dict)

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def write_requests(path: Path, lines: Sequence[tuple[str, Mapping[str, object]]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as f:
        for authorization, body in lines:
            f.write(f"{authorization}\t{json.dumps(body, separators=(',', ':'))}\n")
    return path


def run(
    url: str, requests_file: Path, *, seconds: float, connections: int, work_dir: Path
) -> Result:
    """Drive `url` (scheme://host:port/path) for `seconds` with `connections` connections."""
    script = work_dir / "bench.lua"
    if not script.exists():
        script.write_text(LUA)
    match = re.match(r"(https?://[^/]+)(/.*)", url)
    assert match, url
    base, path = match.groups()
    argv = [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "30s",
        "-s",
        str(script),
        base,
        "--",
        str(requests_file),
        path,
    ]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60)
    found = re.search(r"BENCH-RESULT (\{.*\})", out.stdout)
    if out.returncode or not found:
        raise RuntimeError(f"wrk failed ({out.returncode}): {out.stdout}\n{out.stderr}")
    data = json.loads(found.group(1))
    return Result(
        requests=data["requests"],
        seconds=data["duration_us"] / 1e6,
        errors=data["errors"] + data["socket_errors"],
        mean_ms=data["mean_us"] / 1000,
        p50_ms=data["p50_us"] / 1000,
        p95_ms=data["p95_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        error_samples=tuple(re.findall(r"^BENCH-ERROR (.*)$", out.stdout, re.M)),
    )
