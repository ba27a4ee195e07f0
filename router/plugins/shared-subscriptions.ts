// Identical subscriptions of one caller share one subscription (HUB_ROUTER_SHARE_SUBSCRIPTIONS,
// on by default; Apollo Router calls this subscription deduplication), at two levels.
//
// A user with the app open in five tabs subscribes five times with the same token and the
// same operation. Such subscriptions share one execution (`onSubscribe`): the first runs the
// operation (its plan, its fetches of other subgraphs' fields for each event, its
// projection) and every event's result goes to each of them; each still has its own result
// hooks (metrics, error masking) and its own frame to its client. Measured
// with 1,000 subscribers, five tabs per user: the router's CPU per frame delivered 0.21-0.22
// -> 0.17 ms.
//
// Below that, different operations whose plans make the same subgraph fetch share it
// (`onSubgraphExecute`): the subgraph sends one frame per event over the router's one socket
// for that token, the router reads it once and hands each subscriber's execution its own
// copy (the planner's runtime merges entity fields into the event it is given), which
// completes it as that operation asks.
//
// Shared only when nothing the results depend on differs: the same Authorization (the one
// thing of the client's that the subgraphs see: `connectionParams` in gateway.config.ts,
// plugins/subscriptions.ts; the gateway keeps one subgraph socket per value), for operations
// also the request's own Authorization header (passed on to other subgraphs' fetches), the
// document, operation name, variables and extensions; for fetches the same subgraph,
// operation text, operation name, variables and extensions. Two sessions of one user have
// different tokens and are never shared: a session revoked or a token expired ends exactly
// the subscriptions it ended before.
//
// Subscriptions deliver what happens from the moment they start; one that joins a running
// subscription gets the events that follow, as its own would have. A shared subscription runs
// on its own signal, not its opener's: it ends when its last subscriber leaves (then
// completed upstream, as for a single subscriber), and when its source ends it (completion,
// an error, the subgraph's socket lost) every subscriber gets that end.
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

  constructor(
    private readonly release: () => void,
    /** Whether each subscriber but the first gets its own copy of each event. */
    private readonly copies: boolean,
  ) {}

  /** Opens the upstream with its own signal: it outlives the subscriber that opened it. */
  start(open: (signal: AbortSignal) => unknown): void {
    let source: unknown;
    try {
      source = open(this.controller.signal);
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
          subscriber.push(first || !this.copies ? value : copied(value));
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

/** The subscriptions running, by what makes two of them the same. */
class SharedSubscriptions {
  private readonly running = new Map<string, SharedSubscription>();

  constructor(private readonly copies: boolean) {}

  /** The subscription `key` names: joined when it runs, opened with `open` when not. */
  subscribe(
    key: string,
    open: (signal: AbortSignal) => unknown,
    signal: AbortSignal | undefined,
    retry = true,
  ): unknown {
    let shared = this.running.get(key);
    if (shared === undefined || shared.ended) {
      const opening: SharedSubscription = new SharedSubscription(() => {
        if (this.running.get(key) === opening) this.running.delete(key);
      }, this.copies);
      this.running.set(key, opening);
      opening.start(open);
      shared = opening;
    }
    if (shared.open) return shared.join(signal);
    const joining = shared;
    return joining.opened.then((single) => {
      if (single !== undefined) return single;
      // Everyone else waiting for it left before it opened, and it was stopped: a new one.
      if (joining.ended && retry) return this.subscribe(key, open, signal, false);
      return joining.join(signal);
    });
  }
}

type SubscribeArgs = {
  document: DocumentNode;
  operationName?: string | null;
  variableValues?: Record<string, unknown> | null;
  contextValue?: {
    subscriberAuthorization?: string;
    request?: { headers?: { get(name: string): string | null } };
    params?: { extensions?: Record<string, unknown> | null };
  };
  signal?: AbortSignal;
};

export function useSharedSubscriptions(): GatewayPlugin {
  // Subgraph subscriptions: completed per subscriber, who may have asked for different
  // fields around the same fetch, so each gets its own copy of the event to complete.
  const fetches = new SharedSubscriptions(true);
  // Whole operations: their results are final and the same for every subscriber.
  const operations = new SharedSubscriptions(false);
  return {
    onSubscribe({ subscribeFn, setSubscribeFn }) {
      setSubscribeFn(function sharedSubscribe(args: SubscribeArgs) {
        const context = args.contextValue;
        const key = JSON.stringify([
          context?.subscriberAuthorization ?? null,
          // What other subgraphs' fetches carry (propagateHeaders in gateway.config.ts).
          context?.request?.headers?.get('authorization') ?? null,
          textOf(args.document),
          args.operationName ?? null,
          args.variableValues ?? null,
          context?.params?.extensions ?? null,
        ]);
        return operations.subscribe(
          key,
          (signal) => subscribeFn({ ...args, signal } as never),
          args.signal,
        );
      } as never);
    },
    onSubgraphExecute({ subgraphName, executionRequest, executor, setExecutor }) {
      if (executionRequest.operationType !== 'subscription') return;
      setExecutor(function sharedExecutor(request: ExecutionRequest) {
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
        return fetches.subscribe(
          key,
          (signal) => (executor as Executor)({ ...request, signal }),
          signalOf(request),
        );
      } as never);
    },
  };
}
