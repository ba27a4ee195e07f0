// The router's Prometheus metrics at /metrics (HUB_ROUTER_METRICS).
//
// "standard" (the default) keeps what operating the router needs: every HTTP request's
// duration by operation and status (graphql_yoga_http_duration), GraphQL requests and errors
// by operation (graphql_envelop_request, graphql_envelop_error_result), each subgraph call's
// duration and errors (graphql_gateway_subgraph_execute_duration/_errors), each upstream
// HTTP fetch's duration and status (graphql_gateway_fetch_duration) and supergraph reloads
// (graphql_envelop_schema_change).
//
// "all" adds the rest of what the gateway can count, each paid for on every request: the
// parse/validate/context/execute/subscribe phase histograms (parse and validate are cache
// hits here), a second request-duration histogram and a summary of the same (quantiles are
// computed as requests come), and the deprecated-field counter, which walks every operation
// against the schema (the supergraph has no deprecated field today). Together they cost about
// as much router CPU per request as the standard set itself; turn them on to investigate.
//
// The plugin is made here rather than through the gateway's `prometheus` option, which would
// register it ahead of every plugin in gateway.config.ts: it must come after the authorization
// plugin (plugins/authorization.ts) to count that plugin's refusals among an operation's errors.
import type { GatewayPlugin } from '@graphql-hive/gateway';
import useMeshPrometheus from '@graphql-mesh/plugin-prometheus';

import type { RouterSettings } from './settings.ts';

const STANDARD = {
  graphql_yoga_http_duration: true,
  graphql_envelop_request: true,
  graphql_envelop_error_result: true,
  graphql_envelop_schema_change: true,
  graphql_gateway_subgraph_execute_duration: true,
  graphql_gateway_subgraph_execute_errors: true,
  graphql_gateway_fetch_duration: true,
};

const EXTRA = {
  graphql_envelop_phase_parse: true,
  graphql_envelop_phase_validate: true,
  graphql_envelop_phase_context: true,
  graphql_envelop_phase_execute: true,
  graphql_envelop_phase_subscribe: true,
  graphql_envelop_request_duration: true,
  graphql_envelop_request_time_summary: true,
  graphql_envelop_deprecated_field: true,
};

/** The Prometheus plugin's options: where it answers, and which metrics are on. */
interface PrometheusOptions {
  endpoint: string;
  metrics: Record<string, boolean>;
}

export function prometheusOptions(settings: RouterSettings): PrometheusOptions {
  // The plugin starts from "everything on" and applies these over it, so each one is named.
  const off = Object.fromEntries(Object.keys(EXTRA).map((name) => [name, false]));
  const metrics = settings.metrics === 'all' ? { ...STANDARD, ...EXTRA } : { ...STANDARD, ...off };
  return { endpoint: '/metrics', metrics };
}

/** The gateway's Prometheus plugin, as its `prometheus` option would make it. */
export function usePrometheus(settings: RouterSettings, log: unknown): GatewayPlugin {
  return useMeshPrometheus({ ...prometheusOptions(settings), log } as never) as GatewayPlugin;
}
