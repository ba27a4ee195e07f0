"""What a subgraph tells about itself: request ids in every log line, metrics, traces.

- Request id: taken from the router's `X-Request-Id` (or made here for a direct call),
  held in a context variable for the request, returned in the response header.
- Logs: every line carries `request_id` (`-` outside a request); one JSON object per
  line when HUB_ENV=production, for log collectors.
- Metrics: Prometheus text at `/metrics` — requests and durations by route template,
  and the subscriptions open now.
- Traces: OpenTelemetry over OTLP/HTTP, only when an OTEL_EXPORTER_OTLP_*ENDPOINT is set
  (the SDK reads the other standard OTEL_* variables itself).
"""

from __future__ import annotations

import gc
import json
import logging
import os
import random
import re
import sys
import time
from contextvars import ContextVar
from typing import Any

import orjson
from fastapi import FastAPI
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

REQUEST_ID_HEADER = "x-request-id"
# What a client may choose as its id; anything else is replaced rather than logged verbatim.
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")

request_id: ContextVar[str | None] = ContextVar("request_id", default=None)

HTTP_REQUESTS = Counter(
    "hub_http_requests_total",
    "HTTP requests answered, by route template and status.",
    ["service", "method", "route", "status"],
)
HTTP_DURATION = Histogram(
    "hub_http_request_duration_seconds",
    "Time to answer an HTTP request, by route template.",
    ["service", "method", "route"],
)
# Streamed operations (subscriptions) open now; back to its baseline once clients leave.
ACTIVE_SUBSCRIPTIONS = Gauge(
    "hub_graphql_subscriptions_active",
    "GraphQL subscriptions this process is streaming.",
    ["service"],
)


# Pauses of the garbage collector, by generation: a full collection stops every request and
# subscription of the process for as long as it walks the heap (see common/subgraph.py).
GC_PAUSES = Histogram(
    "hub_gc_pause_seconds",
    "Time the process stood still in a garbage collection, by generation.",
    ["service", "generation"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
)


def time_garbage_collections(service: str) -> None:
    """Observe each collection's pause in `hub_gc_pause_seconds` (once per process)."""
    by_generation = [GC_PAUSES.labels(service=service, generation=str(g)) for g in range(3)]
    started = 0.0

    def callback(phase: str, info: dict[str, int]) -> None:
        nonlocal started
        if phase == "start":
            started = time.perf_counter()
        else:
            by_generation[info["generation"]].observe(time.perf_counter() - started)

    if not any(getattr(c, "hub_gc_timer", False) for c in gc.callbacks):
        callback.hub_gc_timer = True  # type: ignore[attr-defined]
        gc.callbacks.append(callback)


def request_id_from(given: str | None) -> str:
    """The client's id when it is a sane token, else a new one."""
    if given and _SANE_REQUEST_ID.fullmatch(given):
        return given
    return new_request_id()


def new_request_id() -> str:
    """A random (version 4) UUID's text, as the router makes them. A request id names a
    request in logs and is no secret: Python's own generator (reseeded in each forked
    process) makes one in ~1.4 µs, where `str(uuid.uuid4())` takes ~4 µs of every direct
    request."""
    bits = _random_bits(128) & _UUID4_CLEARED | _UUID4_SET
    text = f"{bits:032x}"
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


_random_bits = random.getrandbits
# The version (4) and variant (RFC 4122) bits of a random UUID.
_UUID4_CLEARED = ~((0xF << 76) | (0x3 << 62))
_UUID4_SET = (0x4 << 76) | (0x2 << 62)


class ObservabilityMiddleware:
    """Sets the request id for the request's log lines and response; counts and times it.

    `last_resort`: answer an unexpected error with a plain 500 (then raise it, for the
    server's log), as Starlette's ServerErrorMiddleware does around FastAPI's own routes;
    for an endpoint served outside them, without a second middleware (one more coroutine
    and `send` wrapper per request) just for that."""

    def __init__(
        self, app: ASGIApp, service: str, *, route: str | None = None, last_resort: bool = False
    ) -> None:
        self.app = app
        self.service = service
        self.route = route  # for an endpoint served outside FastAPI's routing
        self.last_resort = last_resort
        # The metrics' children by (method, route, status), as Prometheus keeps them too:
        # `labels()` costs ~2 µs a call.
        self._counters: dict[tuple[str, str, int], Any] = {}
        self._timers: dict[tuple[str, str], Any] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        given = dict(scope["headers"]).get(REQUEST_ID_HEADER.encode())
        rid = request_id_from(given.decode("latin-1") if given else None)
        # Each request runs in its own task (its own context): no reset needed, and the
        # id is still set when Starlette's outermost error handler logs a crash.
        request_id.set(rid)
        if scope["type"] == "websocket":
            await self.app(scope, receive, send)
            return

        status = 0  # no response started
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.append((REQUEST_ID_HEADER.encode(), rid.encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            if self.last_resort and not status:
                crashed = PlainTextResponse("Internal Server Error", status_code=500)
                await crashed(scope, receive, send_with_id)
            raise
        finally:
            self._observe(scope, status or 500, time.perf_counter() - started)

    def _observe(self, scope: Scope, status: int, seconds: float) -> None:
        template = self.route or route_template(scope)
        method = scope["method"]
        counter = self._counters.get((method, template, status))
        if counter is None:
            counter = HTTP_REQUESTS.labels(self.service, method, template, str(status))
            self._counters[method, template, status] = counter
        counter.inc()
        timer = self._timers.get((method, template))
        if timer is None:
            timer = HTTP_DURATION.labels(self.service, method, template)
            self._timers[method, template] = timer
        timer.observe(seconds)


def route_template(scope: Scope) -> str:
    """/api/v1/documents/{document_id} for /api/v1/documents/5f…: one series per route,
    not per document. The path's parameter values are put back as their names (the matched
    route's own path lacks the prefix of the router it was included with)."""
    if "route" not in scope:
        return "unmatched"
    names = {str(value): name for name, value in scope.get("path_params", {}).items()}
    segments = scope["path"].split("/")
    return "/".join(f"{{{names[s]}}}" if s in names else s for s in segments)


async def metrics(request: Request) -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


def install_observability(app: FastAPI, service: str) -> None:
    app.add_middleware(ObservabilityMiddleware, service=service)
    app.add_route("/metrics", metrics, include_in_schema=False)
    if _otlp_endpoint_configured():
        _set_tracer_provider(service)
        _install_tracing(app)


def observe_endpoint(endpoint: ASGIApp, service: str, *, route: str) -> ASGIApp:
    """`endpoint` with what `install_observability` gives the app's own routes."""
    observed: ASGIApp = ObservabilityMiddleware(endpoint, service, route=route, last_resort=True)
    if _otlp_endpoint_configured():
        from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware

        _set_tracer_provider(service)
        observed = OpenTelemetryMiddleware(observed)
    return observed


# --- logs --------------------------------------------------------------------------------


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get() or "-"
        return True


class JsonLogFormatter(logging.Formatter):
    """One JSON object per line. Every request writes one (uvicorn's access line), so it is
    encoded with orjson and the time's seconds are formatted once per second: with
    json.dumps and strftime a line cost ~25 µs, ~3 % of a list request."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service
        self._second = -1
        self._second_text = ""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": self._time(record),
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
            "request_id": getattr(record, "request_id", "-"),
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        try:
            return orjson.dumps(entry, default=str).decode()
        except TypeError:  # text orjson refuses (lone surrogates): escaped by json.dumps
            return json.dumps(entry, default=str)

    def _time(self, record: logging.LogRecord) -> str:
        second = int(record.created)
        if second != self._second:
            self._second = second
            self._second_text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return f"{self._second_text}.{int(record.msecs):03d}Z"


TEXT_LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"


def configure_logging(service: str, *, level: str, json_lines: bool) -> None:
    """One handler on the root logger; uvicorn's loggers propagate to it."""
    # Neither format shows where a record was made, by which thread or process: not
    # gathering it (the logging HOWTO's "Optimization") saves ~9 µs of every request's
    # access line.
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RequestIdFilter())
    if json_lines:
        handler.setFormatter(JsonLogFormatter(service))
    else:
        handler.setFormatter(logging.Formatter(TEXT_LOG_FORMAT))
    handler.formatter.converter = time.gmtime  # type: ignore[union-attr]
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True


# --- traces ------------------------------------------------------------------------------

_OTLP_ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")


def _otlp_endpoint_configured() -> bool:
    return any(os.environ.get(name) for name in _OTLP_ENDPOINT_VARIABLES)


def _set_tracer_provider(service: str) -> None:
    # Imported here: a deployment without a collector never loads the SDK.
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    # The provider is process-wide; set it once even when one process builds several apps.
    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        name = os.environ.get("OTEL_SERVICE_NAME") or f"hub-{service}"
        provider = TracerProvider(resource=Resource.create({SERVICE_NAME: name}))
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        trace.set_tracer_provider(provider)


def _install_tracing(app: FastAPI) -> None:
    from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware

    # Continues the router's trace (W3C traceparent) for each request.
    app.add_middleware(OpenTelemetryMiddleware)
