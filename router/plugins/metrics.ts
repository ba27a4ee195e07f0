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
//
// Beside them, always: the process and Node.js metrics operators expect of any Node service
// (prom-client's default set: process_resident_memory_bytes, process_cpu_seconds_total,
// nodejs_heap_size_used_bytes, nodejs_gc_duration_seconds, nodejs_eventloop_lag_seconds, ...),
// read when /metrics is scraped, and hub_router_heap_retained_bytes (below).
import { constants, PerformanceObserver } from 'node:perf_hooks';
import { getHeapStatistics } from 'node:v8';

import type { GatewayPlugin } from '@graphql-hive/gateway';
import useMeshPrometheus from '@graphql-mesh/plugin-prometheus';
import { collectDefaultMetrics, Gauge, register } from 'prom-client';

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

/**
 * The process metrics, once per process (registering a metric twice throws).
 *
 * The resident memory of a Node process climbs and falls by hundreds of MiB with its
 * collections: V8 lets the heap grow well past what is alive before a full collection (under
 * the bench's soak: ~480 MB of heap, ~123 MB alive after each one). What the router keeps —
 * the number that shows a leak — is the heap in use right after a full collection.
 */
export function registerProcessMetrics(): void {
  if (register.getSingleMetric('hub_router_heap_retained_bytes')) return;
  collectDefaultMetrics({ register });
  const retained = new Gauge({
    name: 'hub_router_heap_retained_bytes',
    help:
      'V8 heap in use right after the latest full (mark-compact) collection: what the router ' +
      'keeps alive, without the garbage between collections (before the first one: at startup)',
  });
  retained.set(getHeapStatistics().used_heap_size);
  // Observers are told shortly after the collection; what was allocated meanwhile is noise.
  new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) {
      const { detail } = entry as PerformanceEntry & { detail?: { kind?: number } };
      if (detail?.kind === constants.NODE_PERFORMANCE_GC_MAJOR) {
        retained.set(getHeapStatistics().used_heap_size);
      }
    }
  }).observe({ entryTypes: ['gc'] });
}
