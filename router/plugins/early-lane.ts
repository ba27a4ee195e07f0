// The early lane (HUB_ROUTER_EARLY_LANE, on by default; only with the fast lane on and the
// standard metrics): a repeat of a request the fast lane (fast-lane.ts) already served cleanly
// through the whole normal path is answered at Yoga's onRequest stage, skipping what the router
// spends on it besides the checks and the subgraph request: the GraphQL parameter parsing and
// checks, the envelop hook chain (parse/validate caches, context building, JWT, authorization,
// operation limits, cost, execution), result processing and serialization.
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
import type { GatewayPlugin } from '@graphql-hive/gateway';
import { Counter, register, type Histogram } from 'prom-client';

import type { VerifiedTokens } from './auth.ts';
import { callerKey } from './authorization.ts';
import { fixedCost } from './cost.ts';
import { count as countLane, earlyTried, handlers, served, type Served } from './fast-lane.ts';
import { GRAPHQL_PATH } from './refusals.ts';
import { deadlineSpent } from './timeout.ts';
import type { RouterSettings } from './settings.ts';

// Distinct (headers, caller, document, operation) combinations remembered; past it, all go.
const MAX_ENTRIES = 1000;
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

/** One part of the key: undefined (an absent parameter) and each JSON value told apart. */
function part(value: unknown): string {
  return value === undefined ? 'u' : `j${JSON.stringify(value)}`;
}

export function useEarlyLane(settings: RouterSettings, tokens: VerifiedTokens): GatewayPlugin {
  if (!settings.earlyLane) return {};
  const entries = new Map<string, Entry>();
  const pending = new WeakMap<Request, Pending>(); // requests that may teach an entry
  const clean = new WeakMap<Request, Served>(); // ...whose result was exactly the lane's data

  return {
    onSchemaChange() {
      entries.clear();
    },

    onRequest({ request, url, fetchAPI, endResponse }) {
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
          if (body === null || typeof body !== 'object' || Array.isArray(body)) return;
          for (const name in body) if (!PARAMETERS.has(name)) return;
          const { query, documentId, operationName, variables } = body as Record<string, unknown>;
          if (variables != null && (typeof variables !== 'object' || Array.isArray(variables))) return;
          const caller = callerKey(user);
          const key = [
            contentType,
            part(headers.get('accept')), // null when absent
            caller,
            part(query),
            part(documentId),
            part(operationName),
          ].join('\n');
          pending.set(request, { key, caller });
          const entry = entries.get(key);
          if (!entry) return;
          if (entry.generation !== handlers.generation) {
            entries.delete(key);
            return;
          }
          if (entry.cost > settings.maxCost) return; // never learnt so; checked all the same
          return entry.ask(variables, request, request.signal).then(
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
              observe(entry, request, response.status, started);
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

/** The Prometheus series the normal path's request would have counted (metrics.ts). */
function observe(entry: Entry, request: Request, status: number, started: number) {
  const requests = register.getSingleMetric('graphql_envelop_request') as Counter<string> | undefined;
  if (requests) requests.inc({ operationName: entry.requestOperationName, operationType: 'query' });
  const durations = register.getSingleMetric('graphql_yoga_http_duration') as Histogram<string> | undefined;
  if (durations) {
    durations.observe(
      {
        operationName: entry.documentOperationName,
        operationType: 'query',
        method: request.method,
        statusCode: status,
        url: request.url,
      },
      (Date.now() - started) / 1000,
    );
  }
}
