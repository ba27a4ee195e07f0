// Identical subscriptions of one caller share one subgraph subscription
// (HUB_ROUTER_SHARE_SUBSCRIPTIONS, on by default; Apollo Router calls this subscription
// deduplication).
//
// A user with the app open in five tabs subscribes five times with the same token. Each
// subscription used to be its own subscription at the subgraph: the subgraph sent five frames
// per event over the router's one socket for that token, and the router read and parsed each.
// Now the first opens the subgraph subscription and the others join it: the subgraph sends
// one frame, the router reads it once and hands it to every subscriber's own execution (the
// rest of its plan, its projection, its hooks and its frame to its client are unchanged).
//
// Shared only when the subgraph could not tell the subscriptions apart: the same subgraph,
// the same Authorization (the one thing of the client's that the subgraph socket carries:
// `connectionParams` in gateway.config.ts, plugins/subscriptions.ts; the gateway keeps one
// socket per value), and the same fetch: operation text, operation name, variables and
// extensions. Two sessions of one user have different tokens and are never shared: a session
// revoked or a token expired ends exactly the subscriptions it ended before.
//
// Subscriptions deliver what happens from the moment they start; one that joins a running
// subgraph subscription gets the events that follow, as its own would have. The subgraph
// subscription ends when its last subscriber leaves (the router then completes it upstream,
// as for a single subscriber), and when the subgraph ends it (completion, an error, the
// socket lost) every subscriber gets that end. Each subscriber but the first gets its own
// copy of each event: the planner's runtime merges entity fields into the event it is given.
import type { GatewayPlugin } from '@graphql-hive/gateway';
import { print, type DocumentNode } from 'graphql';

import type { ExecutionRequest, Executor } from './fast-lane.ts';
import { isAsyncIterable } from './timeout.ts';

type Value = unknown;

/** A copy of the plain objects and arrays of a JSON-like value; anything else is shared. */
function copied(value: Value): Value {
  if (Array.isArray(value)) return value.map(copied);
  if (value !== null && typeof value === 'object') {
    const prototype = Object.getPrototypeOf(value);
    if (prototype !== Object.prototype && prototype !== null) return value;
    const copy: Record<string, Value> = {};
    for (const key in value as Record<string, Value>) copy[key] = copied((value as Record<string, Value>)[key]);
    return copy;
  }
  return value;
}

/** One subscriber's view of a shared subscription: its own queue, its own end. */
class Subscriber implements AsyncIterableIterator<Value> {
  private queue: Value[] = [];
  private waiting: ((result: IteratorResult<Value>) => void) | undefined;
  private failing: ((error: unknown) => void) | undefined;
  private ended = false;
  /** Its client had left before it joined. */
  readonly gone: boolean = false;
  private failure: { error: unknown } | undefined;
  private unlisten: (() => void) | undefined;

  constructor(
    private readonly upstream: SharedSubscription,
    signal: AbortSignal | undefined,
  ) {
    if (signal) {
      if (signal.aborted) {
        this.ended = this.gone = true;
      } else {
        const leave = () => void this.return();
        signal.addEventListener('abort', leave, { once: true });
        this.unlisten = () => signal.removeEventListener('abort', leave);
      }
    }
  }

  push(value: Value): void {
    if (this.ended) return;
    const waiting = this.waiting;
    if (waiting) {
      this.waiting = this.failing = undefined;
      waiting({ value, done: false });
    } else {
      this.queue.push(value);
    }
  }

  /** The subgraph ended the subscription: after what is queued, the end (or the error). */
  close(error?: { error: unknown }): void {
    if (this.ended) return;
    this.ended = true;
    this.failure = error;
    this.unlisten?.();
    const waiting = this.waiting;
    const failing = this.failing;
    this.waiting = this.failing = undefined;
    if (error && failing) {
      this.failure = undefined; // thrown once, then done
      failing(error.error);
    } else if (waiting) {
      waiting({ value: undefined, done: true });
    }
  }

  next(): Promise<IteratorResult<Value>> {
    if (this.queue.length) return Promise.resolve({ value: this.queue.shift(), done: false });
    if (this.ended) {
      const failure = this.failure;
      this.failure = undefined; // thrown once, then done
      return failure ? Promise.reject(failure.error) : Promise.resolve({ value: undefined, done: true });
    }
    return new Promise((resolve, reject) => {
      this.waiting = resolve;
      this.failing = reject;
    });
  }

  /** The subscriber left (its client completed or went away). */
  return(): Promise<IteratorResult<Value>> {
    const wasEnded = this.ended;
    this.ended = true;
    this.queue = [];
    this.failure = undefined;
    this.unlisten?.();
    const waiting = this.waiting;
    this.waiting = this.failing = undefined;
    waiting?.({ value: undefined, done: true });
    if (!wasEnded) this.upstream.leave(this);
    return Promise.resolve({ value: undefined, done: true });
  }

  throw(error?: unknown): Promise<IteratorResult<Value>> {
    void this.return();
    return Promise.reject(error);
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<Value> {
    return this;
  }
}

/** One subgraph subscription and the subscribers it serves. */
class SharedSubscription {
  private readonly subscribers = new Set<Subscriber>();
  private readonly controller = new AbortController();
  private iterator: AsyncIterator<Value> | undefined;
  ended = false;
  /** undefined once the subgraph subscription runs; a result when the subgraph answered once. */
  opened: Promise<Value | undefined> = Promise.resolve(undefined);
  open = false;

  constructor(private readonly release: () => void) {}

  start(executor: Executor, request: ExecutionRequest): void {
    let source: unknown;
    try {
      // Its own signal: the subgraph subscription outlives the subscriber that opened it.
      source = executor({ ...request, signal: this.controller.signal });
    } catch (error) {
      this.end();
      this.opened = Promise.reject(error);
      return;
    }
    this.opened = Promise.resolve(source).then(
      (value) => {
        if (!isAsyncIterable(value)) {
          this.end(); // a single result (an error): given to those who asked, not kept
          return value;
        }
        this.iterator = value[Symbol.asyncIterator]();
        this.open = true;
        void this.pump(this.iterator);
        return undefined;
      },
      (error) => {
        this.end();
        throw error;
      },
    );
  }

  join(signal: AbortSignal | undefined): Subscriber {
    const subscriber = new Subscriber(this, signal);
    if (this.ended) subscriber.close(); // the subgraph ended it already: so is this one
    else if (subscriber.gone) this.leave(subscriber); // its client left while it was opening
    else this.subscribers.add(subscriber);
    return subscriber;
  }

  leave(subscriber: Subscriber): void {
    this.subscribers.delete(subscriber);
    if (this.subscribers.size || this.ended) return;
    this.end();
    if (this.open) this.stopUpstream();
  }

  private stopUpstream(): void {
    this.controller.abort();
    void Promise.resolve(this.iterator?.return?.()).catch(() => {});
  }

  private end(): void {
    if (this.ended) return;
    this.ended = true;
    this.release();
  }

  private async pump(iterator: AsyncIterator<Value>): Promise<void> {
    let failure: { error: unknown } | undefined;
    try {
      for (;;) {
        const { value, done } = await iterator.next();
        if (done || this.ended) break;
        let first = true;
        for (const subscriber of this.subscribers) {
          subscriber.push(first ? value : copied(value));
          first = false;
        }
      }
    } catch (error) {
      failure = { error };
    }
    this.end();
    for (const subscriber of this.subscribers) subscriber.close(failure);
    this.subscribers.clear();
  }
}

const printed = new WeakMap<DocumentNode, string>();
function textOf(document: DocumentNode): string {
  let text = printed.get(document);
  if (text === undefined) printed.set(document, (text = print(document)));
  return text;
}

function signalOf(request: ExecutionRequest): AbortSignal | undefined {
  return request.signal ?? (request.info as { signal?: AbortSignal } | undefined)?.signal;
}

export function useSharedSubscriptions(): GatewayPlugin {
  const running = new Map<string, SharedSubscription>();
  return {
    onSubgraphExecute({ subgraphName, executionRequest, executor, setExecutor }) {
      if (executionRequest.operationType !== 'subscription') return;
      const subscribe = (request: ExecutionRequest, retry: boolean): unknown => {
        const authorization = (request.context as { subscriberAuthorization?: string } | undefined)
          ?.subscriberAuthorization;
        const key = JSON.stringify([
          subgraphName,
          authorization ?? null,
          textOf(request.document),
          request.operationName ?? null,
          request.variables ?? null,
          request.extensions ?? null,
        ]);
        let shared = running.get(key);
        if (shared === undefined || shared.ended) {
          const opening: SharedSubscription = new SharedSubscription(() => {
            if (running.get(key) === opening) running.delete(key);
          });
          running.set(key, opening);
          opening.start(executor as Executor, request);
          shared = opening;
        }
        const signal = signalOf(request);
        if (shared.open) return shared.join(signal);
        const joining = shared;
        return joining.opened.then((single) => {
          if (single !== undefined) return single;
          // Everyone else waiting for it left before it opened, and it was stopped: a new one.
          if (joining.ended && retry) return subscribe(request, false);
          return joining.join(signal);
        });
      };
      setExecutor(function sharedExecutor(request: ExecutionRequest) {
        return subscribe(request, true);
      } as never);
    },
  };
}
