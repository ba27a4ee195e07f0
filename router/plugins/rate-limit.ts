// A per-client request budget (HUB_ROUTER_RATE_LIMIT, e.g. "1200/1m"): a token bucket per
// client address, in this process's memory. With several router instances each keeps its
// own buckets, so the effective limit is per instance.
import type { GatewayPlugin } from '@graphql-hive/gateway';
import { clientAddress } from './client.ts';
import { refusalResponse } from './refusals.ts';
import type { RouterSettings } from './settings.ts';

// Probes and scrapes are not client traffic.
const EXEMPT_PATHS = new Set(['/healthcheck', '/readiness', '/metrics']);
// Bounds memory under a flood of distinct addresses; the least recently seen go first.
const MAX_CLIENTS = 100_000;

interface Bucket {
  tokens: number;
  updated: number; // ms
}

export function useRateLimit(settings: RouterSettings): GatewayPlugin {
  const limit = settings.rateLimit;
  if (!limit) return {};
  const refillPerMs = limit.requests / (limit.perSeconds * 1000);
  const buckets = new Map<string, Bucket>(); // insertion order = least recently seen first

  return {
    onRequest({ request, url, serverContext, fetchAPI, endResponse }) {
      if (EXEMPT_PATHS.has(url.pathname) || request.method === 'OPTIONS') return;
      const client = clientAddress(request, serverContext, settings.trustForwardedFor);
      const now = Date.now();
      const bucket = buckets.get(client) ?? { tokens: limit.requests, updated: now };
      bucket.tokens = Math.min(limit.requests, bucket.tokens + (now - bucket.updated) * refillPerMs);
      bucket.updated = now;
      buckets.delete(client);
      buckets.set(client, bucket);
      if (buckets.size > MAX_CLIENTS) buckets.delete(buckets.keys().next().value!);

      if (bucket.tokens >= 1) {
        bucket.tokens -= 1;
        return;
      }
      const retryAfter = Math.max(1, Math.ceil((1 - bucket.tokens) / refillPerMs / 1000));
      endResponse(
        refusalResponse(fetchAPI, url, {
          status: 429,
          code: 'TOO_MANY_REQUESTS',
          message: `Rate limit of ${limit.requests} requests per ${limit.perSeconds}s exceeded; retry in ${retryAfter}s.`,
          headers: { 'retry-after': String(retryAfter) },
        }),
      );
    },
  };
}
