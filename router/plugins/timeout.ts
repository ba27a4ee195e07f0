// A subgraph that does not answer within HUB_ROUTER_SUBGRAPH_TIMEOUT: its fields get the error
// GATEWAY_TIMEOUT with the subgraph's name (errors.ts turns it into SUBGRAPH_TIMEOUT) and its
// HTTP request is aborted. Subscriptions are long-lived by design and have no timeout.
//
// This replaces the gateway's `upstreamTimeout`, which does the same with an
// AbortSignal.timeout per subgraph request, combined with the HTTP executor's own long-lived
// signal (its disposal) by @graphql-hive/signal. Each combination adds a listener to that
// long-lived signal which is removed only once the garbage collector has finalized the
// request's signals, and a timeout signal with a listener is kept alive until it fires (30 s).
// Under load the long-lived signal held thousands of listeners (seen: 800-4,700 at ~500 req/s),
// and Node's addEventListener walks them all on every add: about a quarter of the router's CPU
// per request. Here the executor gets no signal at all (so it combines nothing), and the one
// fetch of the request gets a per-request signal that is aborted at the deadline or when the
// transport is disposed; the listener on the transport's signal is removed as soon as the
// request is done.
import type { GatewayPlugin } from '@graphql-hive/gateway';
import { GraphQLError } from 'graphql';

const DEADLINE = Symbol('hub.subgraphDeadline');

interface Deadline {
  signal: AbortSignal;
  abort(reason: unknown): void;
  cleanups: (() => void)[];
}

function isPromiseLike<T>(value: unknown): value is PromiseLike<T> {
  return typeof (value as { then?: unknown } | null)?.then === 'function';
}

export function isAsyncIterable(value: unknown): value is AsyncIterable<unknown> {
  return value != null && typeof (value as AsyncIterable<unknown>)[Symbol.asyncIterator] === 'function';
}

/** The error the gateway's own upstreamTimeout gives: maskError (errors.ts) names the subgraph. */
export function subgraphTimeoutError(subgraphName: string, ms: number): GraphQLError {
  return new GraphQLError(`Subgraph ${subgraphName} did not answer within ${ms} ms.`, {
    extensions: { code: 'GATEWAY_TIMEOUT', serviceName: subgraphName, http: { status: 504 } },
  });
}

/**
 * Requests whose deadline the fast lane (fast-lane.ts) already used up waiting for the
 * subgraph: the normal path it falls back to times out at once, with the same error. The
 * fast lane marks the request's context; the early lane (early-lane.ts), which runs before
 * there is a context, marks the HTTP request.
 */
export const deadlineSpent = new WeakSet<object>();

export function useSubgraphTimeout(ms: number): GatewayPlugin {
  return {
    onSubgraphExecute({ subgraphName, executionRequest, setExecutor, executor }) {
      if (executionRequest.operationType === 'subscription') return;
      setExecutor(function timedExecutor(request) {
        const context = request.context as { request?: object } | undefined;
        const spent =
          context != null &&
          (deadlineSpent.has(context) || (context.request != null && deadlineSpent.has(context.request)));
        const controller = new AbortController();
        const deadline: Deadline = {
          signal: controller.signal,
          abort: (reason) => controller.abort(reason),
          cleanups: [],
        };
        let timer: ReturnType<typeof setTimeout> | undefined;
        const done = () => {
          if (timer !== undefined) clearTimeout(timer);
          for (const cleanup of deadline.cleanups.splice(0)) cleanup();
        };
        const timedOut = new Promise<never>((_, reject) => {
          timer = setTimeout(() => {
            timer = undefined;
            const error = subgraphTimeoutError(subgraphName, ms);
            controller.abort(error); // the HTTP request (or a streamed response) stops here
            for (const cleanup of deadline.cleanups.splice(0)) cleanup();
            reject(error);
          }, spent ? 0 : ms);
        });
        timedOut.catch(() => {}); // only ever awaited through the race below
        let result;
        try {
          // The deadline travels in `info`, which the HTTP executor hands to fetch (onFetch).
          result = executor({
            ...request,
            info: { ...request.info, [DEADLINE]: deadline } as typeof request.info,
          });
        } catch (error) {
          done();
          throw error;
        }
        if (!isPromiseLike(result)) {
          done();
          return result;
        }
        return Promise.race([result, timedOut]).then(
          (value) => {
            // A streamed result keeps its deadline: the timer aborts its request if it runs on.
            if (!isAsyncIterable(value)) done();
            return value;
          },
          (error) => {
            done();
            throw error;
          },
        );
      });
    },
    onFetch({ info, options, setOptions }) {
      const deadline = (info as { [DEADLINE]?: Deadline } | undefined)?.[DEADLINE];
      if (!deadline) return;
      // The transport's own signal (aborted when it is disposed: shutdown, supergraph reload)
      // still aborts the request, through a listener removed when the request is done.
      const transport = options.signal;
      if (transport && transport !== deadline.signal) {
        if (transport.aborted) {
          deadline.abort(transport.reason);
        } else {
          const forward = () => deadline.abort(transport.reason);
          transport.addEventListener('abort', forward, { once: true });
          deadline.cleanups.push(() => transport.removeEventListener('abort', forward));
        }
      }
      setOptions({ ...options, signal: deadline.signal });
    },
  };
}
