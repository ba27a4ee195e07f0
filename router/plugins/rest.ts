// REST at the front door: /api/v1/<resource>/... is forwarded to the subgraph that owns the
// resource, bodies streamed both ways (uploads and downloads never sit in router memory).
// The subgraph authenticates the request itself from the headers passed on unchanged
// (Authorization, Cookie): the gateway's JWT plugin sees only GraphQL requests.
import type { GatewayPlugin } from '@graphql-hive/gateway';
import { tooLarge } from './body-limit.ts';
import { clientAddress, nodeRequestOf } from './client.ts';
import { refusalResponse, type Refusal } from './refusals.ts';
import type { RouterSettings } from './settings.ts';

export const REST_ROOT = '/api/v1';

// First path segment under /api/v1 -> owning subgraph.
export const REST_OWNERS: Record<string, string> = {
  auth: 'identity',
  users: 'identity',
  documents: 'content',
  notifications: 'communication',
  conversations: 'communication',
  workflows: 'workflow',
  tasks: 'workflow',
};

// Hop-by-hop headers (RFC 9110 7.6.1) belong to one connection, not to the message.
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-authenticate',
  'proxy-authorization',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'host',
]);

function copyHeaders(from: Headers, HeadersClass: typeof Headers): Headers {
  const headers = new HeadersClass();
  const named = (from.get('connection') ?? '').split(',').map((h) => h.trim().toLowerCase());
  from.forEach((value, name) => {
    if (!HOP_BY_HOP.has(name) && !named.includes(name)) headers.append(name, value);
  });
  return headers;
}

class UploadTooLarge extends Error {}

/**
 * The request body as a stream that fails past `limit` bytes and calls `sent` once it has
 * been read to the end (the subgraph's timeout starts then, not while a slow upload runs).
 */
function meteredBody(body: ReadableStream<Uint8Array>, limit: number, sent: () => void) {
  let size = 0;
  return body.pipeThrough(
    new TransformStream<Uint8Array, Uint8Array>({
      transform(chunk, controller) {
        size += chunk.byteLength;
        if (size > limit) controller.error(new UploadTooLarge());
        else controller.enqueue(chunk);
      },
      flush() {
        sent();
      },
    }),
  );
}

export function useRestPassthrough(settings: RouterSettings): GatewayPlugin {
  const refuse = (status: number, code: string, message: string): Refusal => ({
    status,
    code,
    message,
  });

  return {
    onRequest({ request, url, serverContext, fetchAPI, endResponse }) {
      if (url.pathname !== REST_ROOT && !url.pathname.startsWith(`${REST_ROOT}/`)) return;
      const resource = url.pathname.slice(REST_ROOT.length + 1).split('/')[0];
      const subgraph = REST_OWNERS[resource];
      const base = subgraph && settings.subgraphUrls[subgraph];
      if (!base) {
        endResponse(
          refusalResponse(fetchAPI, url, refuse(404, 'NOT_FOUND', `No REST resource at ${url.pathname}.`)),
        );
        return;
      }
      const limit = settings.maxUploadBytes;
      if (Number(request.headers.get('content-length') ?? 0) > limit) {
        endResponse(refusalResponse(fetchAPI, url, tooLarge(limit)));
        return;
      }

      const headers = copyHeaders(request.headers, fetchAPI.Headers);
      const forwardedFor = request.headers.get('x-forwarded-for');
      const client = clientAddress(forwardedFor, nodeRequestOf(serverContext), settings.trustForwardedFor);
      headers.set('x-forwarded-for', forwardedFor ? `${forwardedFor}, ${client}` : client);
      headers.set('x-forwarded-proto', url.protocol.replace(':', ''));
      headers.set('x-forwarded-host', request.headers.get('host') ?? url.host);
      // Bodies pass through as they are: a response the router's fetch decompressed on
      // the way would no longer match its Content-Encoding header.
      headers.set('accept-encoding', 'identity');

      // The timeout covers the subgraph's work (until response headers), not the upload.
      const abort = new AbortController();
      let timer: ReturnType<typeof setTimeout> | undefined;
      let timedOut = false;
      const startTimer = () => {
        timer = setTimeout(() => {
          timedOut = true;
          abort.abort();
        }, settings.subgraphTimeoutMs);
      };
      const onClientGone = () => abort.abort();
      request.signal?.addEventListener('abort', onClientGone, { once: true });

      const hasBody = request.body !== null && !['GET', 'HEAD'].includes(request.method);
      if (!hasBody) startTimer();
      const init: RequestInit & { duplex?: 'half' } = {
        method: request.method,
        headers,
        body: hasBody ? meteredBody(request.body!, limit, startTimer) : undefined,
        redirect: 'manual',
        signal: abort.signal,
      };
      if (hasBody) init.duplex = 'half'; // required to send a streamed body

      const target = `${base}${url.pathname}${url.search}`;
      return fetchAPI.fetch(target, init).then(
        (response) => {
          clearTimeout(timer);
          endResponse(
            new fetchAPI.Response(response.body, {
              status: response.status,
              statusText: response.statusText,
              headers: copyHeaders(response.headers, fetchAPI.Headers),
            }),
          );
        },
        (error: unknown) => {
          clearTimeout(timer);
          const cause = (error as { cause?: unknown })?.cause ?? error;
          let refusal: Refusal;
          if (cause instanceof UploadTooLarge || error instanceof UploadTooLarge) {
            refusal = tooLarge(limit);
          } else if (timedOut) {
            refusal = refuse(
              504,
              'SUBGRAPH_TIMEOUT',
              `Subgraph ${subgraph} did not answer within ${settings.subgraphTimeoutMs / 1000}s.`,
            );
          } else {
            refusal = refuse(502, 'SUBGRAPH_UNAVAILABLE', `Subgraph ${subgraph} is unavailable.`);
          }
          const log = (serverContext as { log?: { warn(attrs: object, msg: string): void } }).log;
          log?.warn({ subgraph, target, error: String(cause) }, `REST ${request.method} failed`);
          endResponse(refusalResponse(fetchAPI, url, refusal));
        },
      );
    },
  };
}
