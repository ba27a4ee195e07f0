// Hive Gateway configuration for Hub. Started by ./start (or `npm start`); all settings come
// from HUB_* environment variables so the dev stack and the test stack can share this file.
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import { defineConfig, JSONLogWriter, Logger, type GatewayPlugin } from '@graphql-hive/gateway';

const here = dirname(fileURLToPath(import.meta.url));
const env = process.env;

function fatal(message: string): never {
  console.error(`FATAL: ${message}`);
  process.exit(1);
}

// A misspelt "production" must not quietly serve GraphiQL and introspection.
const hubEnv = env.HUB_ENV || 'development';
if (!['development', 'test', 'production'].includes(hubEnv)) {
  fatal(`HUB_ENV="${hubEnv}" is not one of development, test, production.`);
}
const isDev = hubEnv !== 'production';

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

// Compose writes routing URLs for the dev ports (8001-8004); a second stack (tests) runs
// the same subgraphs elsewhere, so each routing URL can be replaced at start.
const subgraphBaseUrlEnv = {
  identity: 'HUB_IDENTITY_URL',
  content: 'HUB_CONTENT_URL',
  communication: 'HUB_COMMUNICATION_URL',
  workflow: 'HUB_WORKFLOW_URL',
};
const locationOverrides = Object.fromEntries(
  Object.entries(subgraphBaseUrlEnv)
    .filter(([, name]) => env[name])
    .map(([subgraph, name]) => [
      subgraph,
      { location: `${env[name]!.replace(/\/+$/, '')}/graphql` },
    ]),
);

export const gatewayConfig = defineConfig({
  // A path (not the SDL) so the gateway watches the file and reloads after compose.mjs.
  supergraph: env.HUB_SUPERGRAPH
    ? resolve(env.HUB_SUPERGRAPH)
    : resolve(here, '../schema/supergraph.graphql'),
  unifiedGraphHandler: routerRuntime.unifiedGraphHandler,

  host: env.HUB_ROUTER_HOST || '127.0.0.1',
  port: Number(env.HUB_ROUTER_PORT || 8000),

  transportEntries: {
    ...locationOverrides,
    '*.http': {
      options: {
        // Strawberry serves graphql-transport-ws on /graphql. The gateway's SSE transport
        // gets no events from Strawberry (it ends SSE lines with \r\n), and plain HTTP
        // subscriptions fail with "Cannot return null for non-nullable field".
        subscriptions: { kind: 'ws', location: '/graphql' },
        // Identical in-flight subgraph queries are merged; benchmarks that repeat one
        // query turn this off to measure the real work.
        deduplicateInflightRequests: !['false', '0'].includes(env.HUB_ROUTER_DEDUPLICATE ?? ''),
      },
    },
  },

  graphiql: isDev,
  landingPage: isDev,
  disableIntrospection: isDev ? undefined : {},
  blockFieldSuggestions: !isDev,

  // Development keeps the default human-readable console lines; production writes one JSON
  // object per line for log collectors. LOG_LEVEL still sets the level in both.
  logging: isDev ? undefined : new Logger({ writers: [new JSONLogWriter()] }),

  // In development, `x-hub-query-plan: 1` on a request returns the Rust planner's plan in
  // the response extensions. (The cast only silences tsc: its dependencies see the ESM and
  // the CommonJS typings of @graphql-hive/logger as two different Logger classes.)
  plugins: () =>
    isDev
      ? [
          routerRuntime.useQueryPlan({
            expose: (req) => req.headers.get('x-hub-query-plan') === '1',
          }) as GatewayPlugin,
        ]
      : [],
});
