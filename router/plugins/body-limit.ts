// Request body size at the GraphQL endpoint: a JSON (or other non-multipart) body over
// HUB_ROUTER_MAX_BODY_BYTES is refused with 413 before it is parsed; multipart requests
// (file uploads) have their own, larger HUB_ROUTER_MAX_UPLOAD_BYTES. The REST passthrough
// applies the upload limit to what it streams (rest.ts).
import type { GatewayPlugin } from '@graphql-hive/gateway';
import { GRAPHQL_PATH, refusalResponse, type Refusal } from './refusals.ts';
import type { RouterSettings } from './settings.ts';

export function tooLarge(limit: number): Refusal {
  return {
    status: 413,
    code: 'PAYLOAD_TOO_LARGE',
    message: `Request body larger than ${limit} bytes.`,
  };
}

export function isMultipart(request: Request): boolean {
  const type = request.headers.get('content-type');
  return type !== null && type.toLowerCase().startsWith('multipart/');
}

/** The body, read until `limit` bytes at most; null when it is longer. */
async function readAtMost(body: ReadableStream<Uint8Array>, limit: number) {
  const chunks: Uint8Array[] = [];
  let size = 0;
  const reader = body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) return Buffer.concat(chunks);
    size += value.byteLength;
    if (size > limit) {
      // Not cancel(): that resets the connection before the client reads the 413. Node
      // discards the rest of an unread body once the response is sent.
      reader.releaseLock();
      return null;
    }
    chunks.push(value);
  }
}

// The GraphQL request parser's JSON content types (graphql-yoga's isPOSTJsonRequest).
const JSON_TYPES = ['application/json', 'application/graphql+json'];

function isJsonPost(request: Request): boolean {
  if (request.method !== 'POST') return false;
  const header = request.headers.get('content-type');
  if (header === null) return false;
  const type = header.split(',')[0];
  return !!type && JSON_TYPES.some((json) => type === json || type.startsWith(`${json};`));
}

// Yoga enforces a body limit of its own (25 MB, not configurable through the gateway) by
// piping every request body through a counting TransformStream into a new Request before
// parsing it: a stream pipeline per request, ~6 % of the router's CPU, for a limit this plugin
// has already enforced more strictly from the Content-Length (Node's HTTP parser delivers no
// more than that). So a JSON POST within the limit hides its body stream from Yoga's check:
// `request.body` reads null on this request object, which the check skips (it still refuses
// a Content-Length over its own limit). The JSON parser reads the body with request.json(),
// which does not go through that property. The request object stays the same one, which the
// HTTP-duration metric and the JWT plugin key their per-request state on. Chunked, multipart
// and other bodies keep Yoga's check.
function hideBodyFromYogasLimit(request: Request): void {
  Object.defineProperty(request, 'body', { value: null, configurable: true });
}

export function useBodyLimit(settings: RouterSettings): GatewayPlugin {
  return {
    onRequest({ request, url, fetchAPI, endResponse, setRequest }) {
      if (url.pathname !== GRAPHQL_PATH || !request.body) return;
      const limit = isMultipart(request) ? settings.maxUploadBytes : settings.maxBodyBytes;
      const declared = request.headers.get('content-length');
      if (declared !== null) {
        if (Number(declared) > limit) endResponse(refusalResponse(fetchAPI, url, tooLarge(limit)));
        else if (isJsonPost(request)) hideBodyFromYogasLimit(request);
        return;
      }
      // Chunked, length unknown: read it under the cap, then hand on a buffered copy.
      return readAtMost(request.body, limit).then((body) => {
        if (body === null) {
          endResponse(refusalResponse(fetchAPI, url, tooLarge(limit)));
        } else {
          setRequest(
            new fetchAPI.Request(request.url, {
              method: request.method,
              headers: request.headers,
              body,
              signal: request.signal,
            }),
          );
        }
      });
    },
  };
}
