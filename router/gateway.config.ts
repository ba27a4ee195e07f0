// Hive Gateway configuration for Hub. Started by ./start (or `npm start`); every setting
// comes from HUB_* environment variables (plugins/settings.ts; README, "Configuration") so
// the dev stack and the test stacks share this file. Each router concern is a small plugin
// under plugins/; this file only puts them together.
import { defineConfig, JSONLogWriter, Logger, type GatewayPlugin } from '@graphql-hive/gateway';

import {
  jwtOptions,
  useAuthenticationErrorCodes,
  useCachedPlansForAuthorizedDocuments,
  useNothingLeftToPlan,
  useVerifiedTokenCache,
  VerifiedTokens,
} from './plugins/auth.ts';
import { useAuthorization } from './plugins/authorization.ts';
import { useBodyLimit } from './plugins/body-limit.ts';
import { corsOptions, useOriginCheck } from './plugins/cors.ts';
import { useCostLimit } from './plugins/cost.ts';
import { useCsrfPrevention } from './plugins/csrf.ts';
import { maskError } from './plugins/errors.ts';
import { useEarlyLane } from './plugins/early-lane.ts';
import { withFastLane } from './plugins/fast-lane.ts';
import { registerProcessMetrics, usePrometheus } from './plugins/metrics.ts';
import { operationLimits, useIntrospectionDisabled } from './plugins/operation-limits.ts';
import { persistedDocuments } from './plugins/persisted-documents.ts';
import { RateLimiter, useRateLimit } from './plugins/rate-limit.ts';
import { useSubgraphReadiness } from './plugins/readiness.ts';
import { useRequestIds } from './plugins/request-id.ts';
import { useRestPassthrough } from './plugins/rest.ts';
import { useSubgraphTimeout } from './plugins/timeout.ts';
import {
  useEndedSubscriptionsCarryNoData,
  useSubscriberAuthorization,
} from './plugins/subscriptions.ts';
import { readSettings, SettingsError, type RouterSettings } from './plugins/settings.ts';
import { useSharedSubscriptions } from './plugins/shared-subscriptions.ts';

function fatal(message: string): never {
  console.error(`FATAL: ${message}`);
  process.exit(1);
}

let settings: RouterSettings;
let trustedDocuments: ReturnType<typeof persistedDocuments> | undefined;
try {
  settings = readSettings();
  trustedDocuments = settings.persistedDocuments
    ? persistedDocuments(settings.persistedDocuments)
    : undefined;
} catch (err) {
  if (err instanceof SettingsError) fatal(err.message);
  throw err;
}
const { isDev } = settings;
registerProcessMetrics();
// Tokens the JWT plugin verified: skipped on their next requests, and the early lane's caller.
const verifiedTokens = new VerifiedTokens();
// One set of buckets for the rate limit plugin and the early lane's server stage.
const rateLimiter = RateLimiter.of(settings);

// The gateway's own --hive-router-runtime flag only warns and falls back to the JS planner
// when the package is missing; Hub must never run on the fallback unnoticed, so load the
// runtime and its native planner here and refuse to start without them.
async function loadRouterRuntime() {
  try {
    const runtime = await import('@graphql-hive/router-runtime');
    // The runtime imports the Rust planner lazily, on the first schema load; importing it
    // now turns a missing or unloadable binary into a startup error.
    await import('@graphql-hive/router-query-planner');
    return runtime;
  } catch (err) {
    fatal(
      'cannot load the Rust query planner (@graphql-hive/router-runtime). ' +
        'Run `npm ci` in router/. The router does not start without it.\n' +
        `Cause: ${err instanceof Error ? err.message : err}`,
    );
  }
}
const routerRuntime = await loadRouterRuntime();

// The single-subgraph fast lane (plugins/fast-lane.ts) sits in front of the planner's executor;
// it learns each document's plan from the runtime itself, through this hook (nothing exposed).
const lastPlan: { plan?: unknown } = {};
const queryPlanProbe = routerRuntime.useQueryPlan({
  expose: false,
  onQueryPlan: (plan) => void (lastPlan.plan = plan),
});

// A second stack (tests, containers) runs the subgraphs elsewhere than the routing URLs
// compose wrote; HUB_<NAME>_URL moves each one (settings.subgraphUrls).
const locations = Object.fromEntries(
  Object.entries(settings.subgraphUrls).map(([name, base]) => [name, { location: `${base}/graphql` }]),
);

export const gatewayConfig = defineConfig({
  // A path (not the SDL) so the gateway watches the file and reloads after compose.mjs.
  supergraph: settings.supergraphPath,
  unifiedGraphHandler: withFastLane(
    routerRuntime.unifiedGraphHandler as never,
    settings,
    queryPlanProbe as never,
    lastPlan,
  ) as never,

  host: settings.host,
  port: settings.port,

  transportEntries: {
    ...locations,
    '*.http': {
      options: {
        // Strawberry serves graphql-transport-ws on /graphql. The gateway's SSE transport
        // gets no events from Strawberry (it ends SSE lines with \r\n), and plain HTTP
        // subscriptions fail with "Cannot return null for non-nullable field".
        subscriptions: {
          kind: 'ws',
          location: '/graphql',
          // The client's token — from its connection_init (WS) or its Authorization header
          // (SSE) — goes into the subgraph socket's connection_init, so subgraphs
          // authenticate subscribers themselves (plugins/subscriptions.ts).
          // A subgraph ends a subscription when its token expires or its session is revoked;
          // the gateway passes that error and the completion on to the client.
          options: {
            connectionParams: { Authorization: '{context.subscriberAuthorization}' },
          },
        },
        // Identical in-flight subgraph queries are merged; benchmarks that repeat one
        // query turn this off to measure the real work.
        deduplicateInflightRequests: settings.deduplicate,
      },
    },
  },

  // --- authentication and authorization -------------------------------------------------
  // Subgraphs verify the caller's token themselves: pass the client's header on unchanged.
  // A WebSocket subscriber's token is in its connection_init, not in a header: the fetches of
  // its events' fields from other subgraphs carry that one (plugins/subscriptions.ts).
  propagateHeaders: {
    fromClientToSubgraphs: ({ request, context }) => {
      const authorization =
        request.headers.get('authorization') ??
        (context as { subscriberAuthorization?: string } | undefined)?.subscriberAuthorization;
      return authorization ? { authorization } : {};
    },
  },
  // The router verifies tokens (plugins/auth.ts) and enforces @authenticated /
  // @requiresScopes: genericAuth with its verdicts remembered, a plugin below
  // (plugins/authorization.ts) instead of the `genericAuth` option.
  // REST requests never reach these: the subgraphs verify those themselves (plugins/rest.ts).
  jwt: jwtOptions(settings),

  // --- protection -----------------------------------------------------------------------
  // Depth, aliases, tokens and cost are plugins below (operation-limits.ts, cost.ts).
  // The subgraph timeout (code GATEWAY_TIMEOUT) is a plugin below (timeout.ts): the gateway's
  // own `upstreamTimeout` cost a quarter of the router's CPU per request under load.
  cors: corsOptions(settings),
  persistedDocuments: trustedDocuments,
  // Uploads through GraphQL (multipart request spec), limited by HUB_ROUTER_MAX_UPLOAD_BYTES.
  multipart: true,

  // --- development conveniences, off in production ---------------------------------------
  // GraphiQL is the gateway's Hive Laboratory: one self-contained page, no CDN.
  // Introspection is refused in production by a plugin below (code INTROSPECTION_DISABLED).
  graphiql: isDev,
  landingPage: isDev,
  blockFieldSuggestions: !isDev,

  // Unexpected errors stay masked; a subgraph that is down or too slow is named (errors.ts).
  maskedErrors: { maskError },

  // --- observability --------------------------------------------------------------------
  // Development keeps the default human-readable console lines; production writes one JSON
  // object per line for log collectors. LOG_LEVEL (./start maps HUB_LOG_LEVEL) sets the level.
  logging: isDev ? undefined : new Logger({ writers: [new JSONLogWriter()] }),
  requestId: false, // plugins/request-id.ts instead: it validates the client's id
  // Request, operation and per-subgraph durations and error counts at /metrics;
  // HUB_ROUTER_METRICS=all adds phase timings and more: a plugin below (plugins/metrics.ts).

  // Order matters for onRequest: the request id first (every refusal carries it), then the
  // refusals that need no parsing, then REST, which ends the request for /api/v1 paths.
  plugins: (context) => [
    // Where the gateway's `genericAuth` and `prometheus` options would put them: authorization
    // first (every later plugin sees the rewritten operation), then the metrics (which count
    // its refusals among the operation's errors).
    useAuthorization(),
    usePrometheus(settings, context.log),
    useRequestIds(),
    useVerifiedTokenCache(verifiedTokens),
    useSubgraphReadiness(settings),
    useRateLimit(rateLimiter),
    useOriginCheck(settings),
    useBodyLimit(settings),
    useRestPassthrough(settings),
    useSubgraphTimeout(settings.subgraphTimeoutMs),
    ...(settings.shareSubscriptions ? [useSharedSubscriptions()] : []),
    useCsrfPrevention(),
    ...operationLimits(settings),
    useCostLimit(settings.maxCost),
    useCachedPlansForAuthorizedDocuments(), // after genericAuth's rewrite (registered earlier)
    useNothingLeftToPlan(),
    useSubscriberAuthorization(),
    useEndedSubscriptionsCarryNoData(),
    useAuthenticationErrorCodes(),
    ...(isDev ? [] : [useIntrospectionDisabled()]),
    // In development, `x-hub-query-plan: 1` on a request returns the Rust planner's plan in
    // the response extensions. (The cast only silences tsc: its dependencies see the ESM and
    // the CommonJS typings of @graphql-hive/logger as two different Logger classes.)
    ...(isDev
      ? [
          routerRuntime.useQueryPlan({
            expose: (req) => req.headers.get('x-hub-query-plan') === '1',
          }) as GatewayPlugin,
        ]
      : []),
    // Last: its onRequest runs after every other one (request id, rate limit, origin, body
    // limit, REST), and it learns from the result every other hook has finished with.
    useEarlyLane(settings, verifiedTokens, rateLimiter),
  ],
});
