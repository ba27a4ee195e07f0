"""Point communication's Celery client at a dead broker for a while: enqueues then fail as
they do when Redis is unreachable."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from subgraphs.communication import tasks

DEAD_BROKER = "redis://127.0.0.1:1/0"


def _point(url: str) -> None:
    app = tasks.app
    # Forget the connection and producer pools: the next send builds them for `url` (kombu
    # keeps each URL's pools, so the working ones are found again afterwards, still open).
    app._pool = None
    app.amqp._producer_pool = None
    app.conf.broker_url = url


@contextmanager
def broker_unreachable() -> Iterator[None]:
    working = tasks.app.conf.broker_url
    _point(DEAD_BROKER)
    try:
        yield
    finally:
        _point(working)
