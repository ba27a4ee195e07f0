"""How long a subscription lives: no longer than the token that opened it.

A query checks its token once and is done; a subscription can stream for hours, long
after the access token that authorized it expired or its session was signed out. Ending
it is the subgraph's job — it is the one that verified the token and that holds the
stream — so every streamed operation runs under `bounded_by_token`:

- at the token's `exp` the stream ends with one last result carrying an error
  `UNAUTHENTICATED` (`reason: "expired"`), then completes; the client renews its token
  and subscribes again. (An expiry timer, not a check per event: a quiet subscription
  must end on time too.)
- when identity revokes the token's session (`SessionRevocations`), it ends the same way
  with `reason: "revoked"`, within the pub/sub round trip.
- however it ends — completed, refused, or the client gone (the transport cancels the
  stream) — the source generator is closed, so the resolver's own cleanup (its Redis
  pub/sub subscription) runs. `hub_graphql_subscriptions_active` counts open streams per
  service; after clients leave it returns to its baseline, which is how a leak shows.

The subgraph completing the stream is what the router passes on to its client, over
WebSocket or SSE alike.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator
from contextlib import AsyncExitStack, suppress
from typing import Any

import strawberry
from graphql import GraphQLError
from strawberry.types import ExecutionResult

from subgraphs.common.auth import Principal, SessionRevocations
from subgraphs.common.observability import ACTIVE_SUBSCRIPTIONS

STOP_ATTEMPTS = 20
STOP_WAIT_SECONDS = 0.25

TOKEN_EXPIRED = "the access token has expired; subscribe again with a new one"
SESSION_REVOKED = "the session has been signed out"


def ended(message: str, reason: str) -> ExecutionResult:
    return ExecutionResult(
        data=None,
        errors=[GraphQLError(message, extensions={"code": "UNAUTHENTICATED", "reason": reason})],
    )


async def bounded_by_token(
    source: AsyncGenerator[Any, None],
    *,
    service: str,
    principal: Principal | None,
    revocations: SessionRevocations | None,
) -> AsyncGenerator[Any, None]:
    """`source`'s results until it ends, the caller's token expires or its session is revoked."""
    gauge = ACTIVE_SUBSCRIPTIONS.labels(service=service)
    gauge.inc()
    loop = asyncio.get_running_loop()
    pending: asyncio.Future[Any] | None = None
    # What the loop below waits on between two results: woken by the next result, by the
    # expiry timer or by the revocation. One timer for the whole stream and one future per
    # event (not an `asyncio.wait` with its timer, set and callbacks per event: this runs
    # for every event of every open subscription).
    wake: asyncio.Future[None] | None = None
    ending: str | None = None

    def rouse(_: object = None) -> None:
        if wake is not None and not wake.done():
            wake.set_result(None)

    def end(reason: str) -> None:
        nonlocal ending
        ending = ending or reason
        rouse()

    def on_revoked(waited: asyncio.Future[Any]) -> None:
        if not waited.cancelled():
            end("revoked")

    try:
        async with AsyncExitStack() as stack:
            revoked = asyncio.Event()
            if principal is not None and principal.session_id and revocations is not None:
                revoked = await stack.enter_async_context(revocations.watch(principal.session_id))
                raise_if_cancelled()
            revoked_wait = asyncio.ensure_future(revoked.wait())
            revoked_wait.add_done_callback(on_revoked)
            stack.callback(revoked_wait.cancel)
            if principal is not None and principal.expires_at is not None:
                left = max(0.0, principal.expires_at - time.time())
                stack.callback(loop.call_later(left, end, "expired").cancel)
            while True:
                if pending is None and ending is None:
                    pending = asyncio.ensure_future(anext(source))
                    pending.add_done_callback(rouse)
                if pending is not None and not pending.done() and ending is None:
                    wake = loop.create_future()
                    try:
                        await wake
                    finally:
                        wake = None
                if pending is not None and pending.done():
                    try:
                        result = pending.result()
                    except StopAsyncIteration:
                        return
                    pending = None
                    yield result
                elif ending == "revoked":
                    yield ended(SESSION_REVOKED, "revoked")
                    return
                elif ending == "expired":
                    yield ended(TOKEN_EXPIRED, "expired")
                    return
    finally:
        if pending is not None:
            await _stop(pending)
        with suppress(RuntimeError):  # already closed by the cancellation above
            await source.aclose()
        gauge.dec()


async def _stop(task: asyncio.Future[Any]) -> None:
    """Cancel `task` until it ends.

    redis-py now and then swallows a cancellation that lands inside a command (seen with
    redis 8.1: about 1 in 150 cancellations), after which a resolver would go on listening
    on its pub/sub channel for good — the subscription leak a client that subscribes and
    leaves at once can cause. So cancel again until the task really ends.
    """
    for _ in range(STOP_ATTEMPTS):
        if task.done():
            break
        task.cancel()
        await asyncio.wait({task}, timeout=STOP_WAIT_SECONDS)
    if task.done() and not task.cancelled():
        task.exception()  # retrieved: it was a result, StopAsyncIteration or an error


def raise_if_cancelled() -> None:
    """Re-raise a cancellation that an awaited library swallowed (see `_stop`)."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


class Schema(strawberry.federation.Schema):
    """Federation schema whose streamed operations end with their token (see module doc)."""

    async def stream(self, *args: Any, **kwargs: Any) -> Any:
        source = await super().stream(*args, **kwargs)
        context = kwargs.get("context_value")
        settings = getattr(context, "settings", None)
        verifier = getattr(context, "verifier", None)
        return bounded_by_token(
            source,
            service=getattr(settings, "name", "unknown"),
            principal=getattr(context, "principal", None),
            revocations=getattr(verifier, "revocations", None),
        )
