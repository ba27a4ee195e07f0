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

# redis-py now and then swallows a cancellation that lands inside a command (seen with
# redis 8.1: about 1 in 150 cancellations); a stream that ends itself cancels again until
# its wait is over.
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
    # The next result is awaited in the consumer's own task, so that an event is executed
    # and sent in one go: one user's five open subscriptions send their frames one after
    # the other as each is ready. (A task per awaited result, woken by whichever came
    # first, made every subscription of an event finish executing before the first frame
    # left; 0.9 ms from an event to its first frame for five subscribers.) The expiry timer
    # and the revocation interrupt that wait by cancelling the task in it: the source ends
    # with the cancellation, and the stream with its last result.
    waiting: asyncio.Task[Any] | None = None
    ending: str | None = None
    cancels = 0  # made by this stream, taken back once they have done their work
    again: asyncio.TimerHandle | None = None

    def interrupt(attempt: int = 0) -> None:
        nonlocal cancels, again
        if waiting is None or waiting.done():
            return
        if waiting.cancel():
            cancels += 1
        if attempt < STOP_ATTEMPTS:  # a library that swallowed it gets it again
            again = loop.call_later(STOP_WAIT_SECONDS, interrupt, attempt + 1)

    def end(reason: str) -> None:
        nonlocal ending
        if ending is None:
            ending = reason
            interrupt()

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
            while ending is None:
                waiting = asyncio.current_task()
                try:
                    result = await anext(source)
                except StopAsyncIteration:
                    return
                except asyncio.CancelledError:
                    if _take_back(cancels):
                        raise  # the client left (too)
                    break
                finally:
                    waiting = None
                    if again is not None:
                        again.cancel()
                if _take_back(cancels):  # swallowed on the way, and not all of them ours
                    raise asyncio.CancelledError
                cancels = 0
                yield result
            yield (
                ended(SESSION_REVOKED, "revoked")
                if ending == "revoked"
                else ended(TOKEN_EXPIRED, "expired")
            )
    finally:
        with suppress(RuntimeError):  # closed already, by the exception that ended it
            await source.aclose()
        gauge.dec()


def _take_back(cancels: int) -> int:
    """Take back `cancels` cancellations of the current task (the ones a stream made to end
    itself); what is left is someone else's: the client leaving."""
    task = asyncio.current_task()
    if task is None:
        return 0
    for _ in range(min(cancels, task.cancelling())):
        task.uncancel()
    return task.cancelling()


def raise_if_cancelled() -> None:
    """Re-raise a cancellation that an awaited library swallowed (see `STOP_ATTEMPTS`)."""
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
