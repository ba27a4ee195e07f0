// The early lane (HUB_ROUTER_EARLY_LANE, on by default; only with the fast lane on and the
// standard metrics): a repeat of a request the fast lane (fast-lane.ts) already served cleanly
// through the whole normal path is answered at Yoga's onRequest stage, skipping what the router
// spends on it besides the checks and the subgraph request: the GraphQL parameter parsing and
// checks, the envelop hook chain (parse/validate caches, context building, JWT, authorization,
// operation limits, cost, execution), result processing and serialization.
//
// Its server stage goes one step further back: Node's HTTP server hands each request to the
// lane before the gateway's server adapter makes a Fetch API Request of it, and a repeat that
// needs no other request-level check than those the stage does itself (below) is answered
// there, from Node's request to Node's response. The adapter, Yoga's onRequest and onResponse
// hook chains and the Fetch API objects were two fifths of the router's CPU for such a request
// (README, Performance). Everything else is handed on to the gateway as it came (with the body
// the stage read), and answered as without the stage: at onRequest when it is a repeat the
// stage had to leave (a token the JWT or rate limit plugin has yet to verify), else by the
// normal path.
//
// What "a repeat" is, learnt from a request that went the whole normal path (every check ran,
// the fast lane served it, and the result Yoga serialized was exactly `{"data": <the lane's
// data>}` answered 200): the same path (/graphql, no query string), method (POST), Content-Type
// and Accept headers as sent, the same `query` text (or persisted `documentId`) and
// `operationName`, the body having no other key than those and `variables` (no `extensions`),
// and the same caller as the authorization verdict sees it (anonymous, or the set of scopes of
// a verified token). Only the variables may differ. Its entry is forgotten when the supergraph
// changes (and never used under another gateway handler than the one that served it).
//
// Why each check still has the same outcome on the early lane:
// - request id, rate limit, origin (CORS), body limit, REST paths: onRequest hooks registered
//   before this one; they ran. CORS and request-id response headers are onResponse hooks,
//   which run on the early response too. Content-Length is required (a chunked body is
//   buffered into another request by the body limit: normal path).
// - CSRF: a JSON Content-Type always passes (the Content-Type is part of the key).
// - JWT: no Authorization header (anonymous), or `Bearer <token>` found unexpired among the
//   tokens the JWT plugin verified itself (auth.ts, VerifiedTokens: until its `exp`, a
//   minute at most). Anything else (a token not verified yet, expired, invalid, another
//   scheme) goes the normal way and is verified or refused there.
// - authorization (@authenticated / @requiresScopes): its verdict depends on the document,
//   operation name and scopes, all in the key; only a verdict that removed nothing is learnt.
// - validation, introspection, depth/aliases/tokens: depend on the document text and schema.
// - cost: only operations whose cost reads no variable are learnt (cost.ts, fixedCost); the
//   remembered cost is checked against HUB_ROUTER_MAX_COST again on every request.
// - persisted documents: the key tells query text from a documentId; a request form the
//   normal path refuses is never learnt.
// - variables: coerced against the supergraph as the normal path coerces them; an error, a
//   non-object `variables` (which Yoga refuses) or anything unexpected: normal path.
// - the subgraph's answer: the fast lane's own checks (200 JSON, data, no errors, exactly the
//   selected fields, known enum values); otherwise the normal path answers, and the fast lane
//   leaves that request alone. A subgraph that does not answer within the timeout makes the
//   normal path time out at once (timeout.ts), as with the fast lane.
// - the response: the status (200) and Content-Type the normal path gave for that key, which
//   must be one of Yoga's regular JSON answers (not SSE, not multipart), the body
//   JSON.stringify({data}) as Yoga's serializer writes it; every onResponse hook runs on it.
// - metrics: graphql_envelop_request and graphql_yoga_http_duration are counted with the
//   labels the Prometheus plugins give the same request; the subgraph and fetch histograms by
//   the fast lane's request (fast-lane.ts). hub_router_fast_lane_total{outcome="served"}
//   counts these requests too; hub_router_early_lane_total{outcome} counts what this lane did.
//   With HUB_ROUTER_METRICS=all (phase timings and more) the lane is off.
// Debug-level log lines of the skipped phases (parameters, subgraph fetches) are not written
// for these requests (the fast lane already skips the latter).
//
// What the server stage checks itself, to answer as the onRequest stage would:
// - only POST /graphql (no query string) with a JSON Content-Type, a Content-Length of at most
//   SERVER_STAGE_MAX_BODY (and HUB_ROUTER_MAX_BODY_BYTES), no Transfer-Encoding, a Host header;
// - origin: an Origin the origin check would refuse is handed on to it; an allowed one gets
//   the CORS plugin's headers (cors.ts, corsHeadersFor);
// - request id: the client's sane X-Request-Id or a new one, as request-id.ts; sent to the
//   subgraph, returned in the response, and written into a request handed on after the
//   subgraph was asked, so that the normal path carries the same id;
// - JWT: as at onRequest (a token the JWT plugin verified, unexpired);
// - rate limit: the request is charged to the same bucket (rate-limit.ts's RateLimiter), for
//   an anonymous request (its address) or a token the limiter has verified itself; charged
//   once even when it is handed on afterwards; one over the limit is handed on uncharged, and
//   the rate limit plugin refuses it;
// - metrics: as at onRequest, with the URL label the server adapter would have made;
//   hub_router_early_lane_server_total counts the requests this stage answered.
// A request it answers gets exactly the onRequest stage's response: status, Content-Type,
// Content-Length, the CORS headers, X-Request-Id, in that order (the onResponse hooks that
// run on the early lane's answer add nothing else to it).
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { GatewayPlugin } from '@graphql-hive/gateway';
import { Counter, register, type Histogram } from 'prom-client';

import type { RememberedJwt, VerifiedTokens } from './auth.ts';
import { callerKey } from './authorization.ts';
import { nodeRequestOf } from './client.ts';
import { corsHeadersFor, originAllowedFor } from './cors.ts';
import { fixedCost } from './cost.ts';
import { callerOf, ClientGone, count as countLane, earlyTried, handlers, served, type Served } from './fast-lane.ts';
import type { RateLimiter } from './rate-limit.ts';
import { GRAPHQL_PATH } from './refusals.ts';
import { REQUEST_ID_HEADER, requestIdFrom } from './request-id.ts';
import { deadlineSpent } from './timeout.ts';
import type { RouterSettings } from './settings.ts';

// Distinct (headers, caller, document, operation) combinations remembered; past it, all go.
const MAX_ENTRIES = 1000;
// The largest body the server stage reads: a lane request is a query text (or id) and its
// variables. A body it hands on that is not a JSON object goes on as bytes, which the server
// adapter walks once (Object.keys): bounded by this.
const SERVER_STAGE_MAX_BODY = 16 * 1024;
// The GraphQL request parameters a learnt body may have (anything else: normal path).
const PARAMETERS = new Set(['query', 'documentId', 'operationName', 'variables']);
const JSON_TYPE = /^application\/(graphql\+)?json(;|$)/;
// What Yoga's regular result processor answers (the body then is JSON.stringify(result));
// an answer by its SSE or multipart processors (Accept: text/event-stream, multipart/mixed)
// is never learnt.
const REGULAR_TYPES = new Set([
  'application/json; charset=utf-8',
  'application/graphql-response+json; charset=utf-8',
]);

interface Entry {
  generation: number;
  ask: Served['ask'];
  cost: number;
  status: number;
  contentType: string;
  requestOperationName: string; // graphql_envelop_request's label
  documentOperationName: string; // graphql_yoga_http_duration's label
}

interface Pending {
  key: string;
  caller: string;
}

let outcomes: Counter<'outcome'> | undefined;
function count(outcome: string) {
  if (outcomes === undefined) {
    outcomes =
      (register.getSingleMetric('hub_router_early_lane_total') as Counter<'outcome'> | undefined) ||
      new Counter({
        name: 'hub_router_early_lane_total',
        help: 'Repeated single-subgraph queries the early lane answered before GraphQL handling, or handed on (by reason)',
        labelNames: ['outcome'],
      });
  }
  outcomes.inc({ outcome });
}

/**
 * One part of the key: undefined (an absent parameter) and each JSON value told apart. A
 * string is its length and text, which no other part can be read as (JSON.stringify of a
 * query's text was ~1 % of the router's CPU).
 */
function part(value: unknown): string {
  if (value === undefined) return 'u';
  return typeof value === 'string' ? `s${value.length}:${value}` : `j${JSON.stringify(value)}`;
}

/** A request's key, its caller and its variables; undefined for a body the lane never serves. */
function keyOf(contentType: string, accept: string | null, user: unknown, body: unknown) {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) return undefined;
  for (const name in body) if (!PARAMETERS.has(name)) return undefined;
  const { query, documentId, operationName, variables } = body as Record<string, unknown>;
  if (variables != null && (typeof variables !== 'object' || Array.isArray(variables))) return undefined;
  const caller = callerKey(user);
  const key = [contentType, part(accept), caller, part(query), part(documentId), part(operationName)].join('\n');
  return { key, caller, variables };
}

let serverAnswers: Counter | undefined;
function countServerAnswer() {
  if (serverAnswers === undefined) {
    serverAnswers =
      (register.getSingleMetric('hub_router_early_lane_server_total') as Counter | undefined) ||
      new Counter({
        name: 'hub_router_early_lane_server_total',
        help: "Of the early lane's answers, those its server stage gave, before the gateway's server adapter",
      });
  }
  serverAnswers.inc();
}

type Listener = (req: IncomingMessage, res: ServerResponse) => void;

export function useEarlyLane(
  settings: RouterSettings,
  tokens: VerifiedTokens,
  rateLimiter?: RateLimiter,
): GatewayPlugin {
  if (!settings.earlyLane) return {};
  const entries = new Map<string, Entry>();
  const pending = new WeakMap<Request, Pending>(); // requests that may teach an entry
  const clean = new WeakMap<Request, Served>(); // ...whose result was exactly the lane's data
  // Requests the server stage asked the subgraph about and then handed on: why (a fallback).
  const askedByServer = new WeakMap<IncomingMessage, string>();
  const serverBodyLimit = Math.min(SERVER_STAGE_MAX_BODY, settings.maxBodyBytes);
  let serverStageInstalled = false;

  /** The entry for a key, if it may answer now. */
  function usable(key: string): Entry | undefined {
    const entry = entries.get(key);
    if (!entry) return undefined;
    if (entry.generation !== handlers.generation) {
      entries.delete(key);
      return undefined;
    }
    return entry.cost > settings.maxCost ? undefined : entry; // never learnt so; checked all the same
  }

  /**
   * Put the server stage in front of the gateway's request listener. The server is the one
   * whose first request reached onRequest: the gateway's CLI makes it and keeps it to itself.
   */
  function installServerStage(server: Server) {
    serverStageInstalled = true;
    const gateway = server.listeners('request') as Listener[];
    server.removeAllListeners('request');
    const handOn: Listener = (req, res) => {
      for (const listener of gateway) listener.call(server, req, res);
    };
    server.on('request', (req: IncomingMessage, res: ServerResponse) => {
      try {
        serveFromServer(req, res, handOn);
      } catch {
        if (!res.headersSent && req.listenerCount('data') === 0) handOn(req, res); // untouched
      }
    });
  }

  function serveFromServer(req: IncomingMessage, res: ServerResponse, handOn: Listener) {
    const headers = req.headers;
    const contentType = headers['content-type'];
    const length = Number(headers['content-length']);
    if (
      req.method !== 'POST' ||
      req.url !== GRAPHQL_PATH ||
      entries.size === 0 ||
      contentType === undefined ||
      !JSON_TYPE.test(contentType) ||
      !(length > 0 && length <= serverBodyLimit) ||
      headers['transfer-encoding'] !== undefined ||
      headers.host === undefined ||
      !originAllowedFor(settings, headers.origin, headers.host) || // refused by the origin check
      headers['x-hub-query-plan'] !== undefined
    ) {
      handOn(req, res);
      return;
    }
    const authorization = headers.authorization === undefined ? null : headers.authorization;
    const remembered = authorization === null ? undefined : tokens.rememberedFor(authorization);
    if (authorization !== null && remembered === undefined) {
      return handOn(req, res); // verified (or refused) by the JWT plugin
    }
    if (rateLimiter && clientOf(req, authorization) === undefined) {
      return handOn(req, res); // the rate limit plugin verifies the token
    }
    const started = Date.now();
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.once('end', () => {
      const raw = chunks.length === 1 ? chunks[0] : Buffer.concat(chunks);
      let body: unknown;
      try {
        body = JSON.parse(raw.toString('utf8'));
      } catch {
        return handOnRead(req, res, raw, undefined, handOn); // Yoga answers it as before
      }
      try {
        answerRead(req, res, raw, body, remembered, started, handOn);
      } catch {
        if (!res.headersSent) handOnRead(req, res, raw, body, handOn);
      }
    });
  }

  /** The server stage, once it has read the body of a request it may answer. */
  function answerRead(
    req: IncomingMessage,
    res: ServerResponse,
    raw: Buffer,
    body: unknown,
    remembered: RememberedJwt | undefined, // the request's verified token, if it has one
    started: number,
    handOn: Listener,
  ) {
    const headers = req.headers;
    const contentType = headers['content-type']!;
    const authorization = headers.authorization === undefined ? null : headers.authorization;
    if (remembered !== undefined && remembered.until <= Date.now()) {
      return handOnRead(req, res, raw, body, handOn); // expired while its body came
    }
    const user = remembered === undefined ? undefined : remembered.jwt.payload;
    const found = keyOf(contentType, headers.accept === undefined ? null : headers.accept, user, body);
    const entry = found && usable(found.key);
    if (!found || !entry) return handOnRead(req, res, raw, body, handOn);
    const client = rateLimiter && clientOf(req, authorization);
    if (rateLimiter && (client === undefined || rateLimiter.chargeAhead(client, req) !== undefined)) {
      return handOnRead(req, res, raw, body, handOn); // over the limit: the plugin refuses it
    }
    const requestId = requestIdFrom(headers[REQUEST_ID_HEADER] as string | undefined);
    headers[REQUEST_ID_HEADER] = requestId; // what the normal path reads if it is handed on
    const gone = new ClientGone();
    res.once('close', () => {
      if (!res.writableFinished) gone.cancel();
    });
    const fallBack = (why: string) => {
      askedByServer.set(req, why);
      countLane(why);
      count('handed_on');
      if (!gone.aborted) handOnRead(req, res, raw, body, handOn);
    };
    entry
      .ask(found.variables, { authorization, requestId }, gone)
      .then((answer) => {
        if (gone.aborted) return; // the client left
        if ('fallback' in answer) return fallBack(answer.fallback);
        const text = JSON.stringify({ data: answer.data });
        // In the order of the onRequest stage's answer: its own headers, the CORS plugin's,
        // the request id.
        // As the flat list writeHead takes (Array.prototype.flat cost ~1 % of the router's CPU).
        const written: string[] = ['Content-Type', entry.contentType, 'content-length', String(Buffer.byteLength(text))];
        if (headers.origin) {
          const method = headers['access-control-request-method'];
          for (const [name, value] of corsHeadersFor(headers.origin, method, headers['access-control-request-headers'])) {
            written.push(name, value);
          }
        }
        written.push(REQUEST_ID_HEADER, requestId);
        res.writeHead(entry.status, written);
        res.end(text);
        countLane('served');
        count('served');
        countServerAnswer();
        const protocol = (req.socket as { encrypted?: boolean }).encrypted ? 'https' : 'http';
        observe(entry, 'POST', `${protocol}://${headers.host}${req.url}`, entry.status, started);
      })
      .catch(() => {
        // Anything unexpected (the lane's request, or writing the answer): the normal path
        // answers if nothing was sent yet, as everywhere on the lanes; nothing escapes as an
        // unhandled rejection.
        if (!res.headersSent) fallBack('fallback_internal');
        else res.destroy();
      });
  }

  /** Who the rate limit charges: undefined while only its plugin can tell (a token to verify). */
  function clientOf(req: IncomingMessage, authorization: string | null): string | undefined {
    // Node joins a repeated X-Forwarded-For with ", " (only Set-Cookie comes as a list).
    const forwardedFor = req.headers['x-forwarded-for'];
    const joined = Array.isArray(forwardedFor) ? forwardedFor.join(', ') : forwardedFor ?? null;
    return rateLimiter!.knownClientOf(authorization, joined, req);
  }

  return {
    onSchemaChange() {
      entries.clear();
    },

    onRequest({ request, url, fetchAPI, endResponse, serverContext }) {
      const nodeRequest = nodeRequestOf(serverContext);
      if (nodeRequest !== undefined) {
        if (!serverStageInstalled) {
          const server = (nodeRequest.socket as { server?: Server } | null)?.server;
          if (server && typeof server.listeners === 'function') installServerStage(server);
        }
        const fallback = askedByServer.get(nodeRequest);
        if (fallback !== undefined) {
          // Asked once by the server stage: the normal path answers, without the fast lane.
          earlyTried.add(request);
          if (fallback === 'fallback_timeout') deadlineSpent.add(request);
          return;
        }
      }
      if (request.method !== 'POST') return;
      const headers = request.headers;
      const contentType = headers.get('content-type');
      if (contentType === null || !JSON_TYPE.test(contentType)) return;
      if (headers.get('content-length') === null || headers.has('x-hub-query-plan')) return;
      if (url.pathname !== GRAPHQL_PATH || url.search) return;
      const authorization = headers.get('authorization');
      let user: unknown;
      if (authorization !== null) {
        const jwt = tokens.lookup(authorization);
        if (!jwt) return; // verified (or refused) by the JWT plugin on the normal path
        user = jwt.payload;
      }
      const started = Date.now();
      // Yoga's JSON parser reads the body with request.json(): it gets this same promise.
      const parsed = request.json();
      Object.defineProperty(request, 'json', { value: () => parsed, configurable: true });
      return parsed.then(
        (body: unknown) => {
          const found = keyOf(contentType, headers.get('accept'), user, body);
          if (!found) return;
          pending.set(request, { key: found.key, caller: found.caller });
          const entry = usable(found.key);
          if (!entry) return;
          return entry.ask(found.variables, callerOf(request), request.signal).then(
            (answer) => {
              if ('fallback' in answer) {
                // The normal path answers, without the fast lane (it would ask again).
                earlyTried.add(request);
                if (answer.fallback === 'fallback_timeout') deadlineSpent.add(request);
                countLane(answer.fallback);
                count('handed_on');
                return;
              }
              countLane('served');
              count('served');
              const response = new fetchAPI.Response(JSON.stringify({ data: answer.data }), {
                status: entry.status,
                headers: { 'Content-Type': entry.contentType },
              });
              observe(entry, request.method, request.url, response.status, started);
              endResponse(response);
            },
            () => {
              earlyTried.add(request);
              countLane('fallback_internal');
              count('handed_on');
            },
          );
        },
        () => undefined, // not JSON: Yoga reads the same failure and answers it
      );
    },

    onResultProcess({ request, result }) {
      const learning = pending.get(request);
      if (!learning) return;
      const lane = served.get(request);
      if (!lane || lane.generation !== handlers.generation) return;
      // Exactly what the lane returned, nothing added: Yoga writes JSON.stringify(result).
      if (!result || typeof result !== 'object' || Array.isArray(result)) return;
      const keys = Object.keys(result);
      if (keys.length !== 1 || keys[0] !== 'data' || (result as { data?: unknown }).data !== lane.data) return;
      if ('stringify' in result) return;
      if (callerKey(lane.user) !== learning.caller) return;
      clean.set(request, lane);
    },

    onResponse({ request, response }) {
      const lane = clean.get(request);
      if (!lane) return;
      const learning = pending.get(request)!;
      const contentType = response.headers.get('content-type');
      const cost = fixedCost(lane.schema, lane.document, lane.operationName);
      if (response.status !== 200 || contentType === null || !REGULAR_TYPES.has(contentType)) return;
      if (cost === undefined || cost > settings.maxCost) return;
      if (lane.generation !== handlers.generation) return;
      if (entries.size >= MAX_ENTRIES) entries.clear();
      const documentOperationName = lane.operation.name?.value || 'Anonymous';
      entries.set(learning.key, {
        generation: lane.generation,
        ask: lane.ask,
        cost,
        status: response.status,
        contentType,
        requestOperationName: lane.operationName || documentOperationName,
        documentOperationName,
      });
      count('learnt');
    },
  };
}

/**
 * A request the server stage read and did not answer, handed on with its body: the server
 * adapter takes a request's `body` property instead of its (now spent) stream. A JSON object
 * goes on parsed (request.json() returns it as it is), anything else as the bytes.
 */
function handOnRead(req: IncomingMessage, res: ServerResponse, raw: Buffer, body: unknown, handOn: Listener) {
  const parsed = body !== null && typeof body === 'object' && Object.keys(body).length > 0;
  (req as IncomingMessage & { body?: unknown }).body = parsed ? body : raw;
  handOn(req, res);
}

/** The Prometheus series the normal path's request would have counted (metrics.ts). */
function observe(entry: Entry, method: string, url: string, status: number, started: number) {
  const requests = register.getSingleMetric('graphql_envelop_request') as Counter<string> | undefined;
  if (requests) requests.inc({ operationName: entry.requestOperationName, operationType: 'query' });
  const durations = register.getSingleMetric('graphql_yoga_http_duration') as Histogram<string> | undefined;
  if (durations) {
    durations.observe(
      {
        operationName: entry.documentOperationName,
        operationType: 'query',
        method,
        statusCode: status,
        url,
      },
      (Date.now() - started) / 1000,
    );
  }
}
