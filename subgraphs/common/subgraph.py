"""How a subgraph describes itself to the command line and the tools that handle all four."""

from __future__ import annotations

import argparse
import gc
import importlib
from dataclasses import dataclass
from pathlib import Path

import uvicorn
from fastapi import FastAPI

from subgraphs.common import migrations
from subgraphs.common.graphql import export_sdl
from subgraphs.common.observability import configure_logging, time_garbage_collections
from subgraphs.common.settings import ServiceSettings

# Young-generation collections every this many allocations instead of CPython's 700.
GC_YOUNG_THRESHOLD = 50_000


def tune_garbage_collector() -> None:
    """Fewer, cheaper collections in a long-running service.

    Everything alive once the app is built (modules, the schema, the ORM mappers: most of
    the heap) is moved out of the collector's sight (`gc.freeze`), so a full collection
    no longer walks it; young collections run every 50,000 allocations, not 700. Measured
    with scripts/bench: see README, Performance.
    """
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, middle, old)


# How long a subgraph keeps an idle HTTP connection open: longer than its clients keep
# theirs (Node's agents, 5 s), as a server behind a proxy should.
KEEP_ALIVE_SECONDS = 65


@dataclass(frozen=True)
class Subgraph:
    name: str
    settings_class: type[ServiceSettings]
    package: str  # e.g. "subgraphs.identity"

    def app(self, settings: ServiceSettings | None = None) -> FastAPI:
        build = importlib.import_module(f"{self.package}.app").build
        return build(settings)

    @property
    def migrations_dir(self) -> Path:
        module = importlib.import_module(self.package)
        assert module.__file__
        return Path(module.__file__).parent / "migrations"

    def settings(self) -> ServiceSettings:
        return self.settings_class()

    def sdl(self) -> str:
        schema = importlib.import_module(f"{self.package}.graphql").schema
        return export_sdl(schema)

    def migrate(self) -> bool:
        return migrations.upgrade(self.settings(), self.migrations_dir)

    def serve(self) -> None:
        settings = self.settings()
        configure_logging(
            settings.name, level=settings.hub.log_level, json_lines=settings.hub.is_production
        )
        app = self.app(settings)
        if settings.hub.gc_pause_metric:
            time_garbage_collections(settings.name)
        if settings.hub.gc_tuning:
            tune_garbage_collector()
        uvicorn.run(
            app,
            host=settings.host,
            port=settings.port,
            log_level=settings.hub.log_level.lower(),
            proxy_headers=True,
            log_config=None,  # configure_logging's handler, not uvicorn's own
            # Subscription frames are small JSON going to the router over loopback:
            # compressing each cost ~8 % of communication's CPU while events were delivered
            # (and the router's to inflate them), for nothing.
            ws_per_message_deflate=False,
            # An idle connection is closed by the router first: Node's HTTP agents (the
            # gateway's and the lanes') drop theirs after 5 s. With uvicorn's default of 5 s,
            # the router now and then reused a connection just as uvicorn closed it ("socket
            # hang up": one request in 70,000 of the bench's soak).
            timeout_keep_alive=KEEP_ALIVE_SECONDS,
        )

    def main(self, argv: list[str] | None = None) -> None:
        parser = argparse.ArgumentParser(prog=f"python -m {self.package}")
        commands = parser.add_subparsers(dest="command")
        commands.add_parser("serve", help="serve the subgraph (the default)")
        commands.add_parser("migrate", help="create the database if missing and migrate it")
        commands.add_parser("sdl", help="print the subgraph's federated SDL")
        revision = commands.add_parser(
            "makemigration", help="autogenerate a migration from the models"
        )
        revision.add_argument("message")
        args = parser.parse_args(argv)

        if args.command == "migrate":
            self.migrate()
        elif args.command == "sdl":
            print(self.sdl(), end="")
        elif args.command == "makemigration":
            migrations.make_revision(self.settings(), self.migrations_dir, args.message)
        else:
            self.serve()
