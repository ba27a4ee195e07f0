// One id per request: the client's X-Request-Id when it is a sane token, else a new UUID.
// It is written into the request's own headers, so everything downstream reads it from
// there: the subgraph fetches (GraphQL and REST), the response header, every log line.
// Replaces the gateway's built-in `requestId`, which trusts any client value verbatim
// (a 10 KB or newline-laden id would go straight into logs and subgraph headers).
import { randomUUID } from 'node:crypto';
import type { GatewayPlugin } from '@graphql-hive/gateway';

export const REQUEST_ID_HEADER = 'x-request-id';
const SANE_ID = /^[A-Za-z0-9._:-]{1,128}$/;

export function requestIdOf(request: Request): string | undefined {
  const id = request.headers.get(REQUEST_ID_HEADER);
  return id === null ? undefined : id;
}

/** The client's id when it is a sane token, else a new one. */
export function requestIdFrom(given: string | null | undefined): string {
  return given && SANE_ID.test(given) ? given : randomUUID();
}

export function useRequestIds(): GatewayPlugin {
  return {
    onRequest({ request, serverContext }) {
      const given = request.headers.get(REQUEST_ID_HEADER);
      const id = requestIdFrom(given);
      if (id !== given) request.headers.set(REQUEST_ID_HEADER, id);
      // The request's logger carries the id. Made when first read: most requests log nothing
      // (and one answered by the early lane never reads it).
      const context = serverContext as { log?: { child(attrs: object): unknown } };
      const parent = context.log;
      if (parent) {
        let log: typeof parent | undefined;
        Object.defineProperty(context, 'log', {
          get: () => (log === undefined ? (log = parent.child({ requestId: id }) as typeof parent) : log),
          set: (value: typeof parent) => void (log = value),
          enumerable: true,
          configurable: true,
        });
      }
    },
    onFetch({ context, options, setOptions }) {
      const id = context && 'request' in context ? requestIdOf(context.request as Request) : null;
      if (id) {
        setOptions({ ...options, headers: { ...options.headers, [REQUEST_ID_HEADER]: id } });
      }
    },
    onResponse({ request, response }) {
      const id = requestIdOf(request);
      if (id) response.headers.set(REQUEST_ID_HEADER, id);
    },
  };
}
