// The router's settings, read once from HUB_* environment variables (README, "Configuration").
// A malformed value stops the router at start instead of quietly falling back to a default.
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const routerDir = resolve(dirname(fileURLToPath(import.meta.url)), '..');

export class SettingsError extends Error {}

const MiB = 1024 * 1024;

export interface RateLimit {
  requests: number; // a client may send this many requests at once (the bucket's size)...
  perSeconds: number; // ...and the bucket refills at requests/perSeconds per second
}

export interface RouterSettings {
  env: 'development' | 'test' | 'production';
  isDev: boolean;
  host: string;
  port: number;
  supergraphPath: string;
  deduplicate: boolean;
  subgraphUrls: Record<string, string>; // subgraph name -> base URL (without /graphql)
  maxDepth: number;
  maxAliases: number;
  maxTokens: number;
  maxCost: number;
  maxBodyBytes: number;
  maxUploadBytes: number;
  subgraphTimeoutMs: number;
  corsOrigins: string[];
  rateLimit: RateLimit | null;
  trustForwardedFor: boolean;
  persistedDocuments: string | null;
  metrics: 'standard' | 'all';
  fastLane: boolean; // single-subgraph queries forwarded without the plan executor (fast-lane.ts)
  earlyLane: boolean; // repeats of fast-lane queries answered at onRequest (early-lane.ts)
  shareSubscriptions: boolean; // identical subscriptions of one caller share one upstream (shared-subscriptions.ts)
  jwksUrl: string;
  jwtIssuer: string;
  jwtAudience: string;
}

type Env = Record<string, string | undefined>;

function integer(env: Env, name: string, fallback: number, min = 1): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min) {
    throw new SettingsError(`${name}="${raw}" is not an integer >= ${min}.`);
  }
  return value;
}

function flag(env: Env, name: string, fallback: boolean): boolean {
  const raw = (env[name] ?? '').toLowerCase();
  if (raw === '') return fallback;
  if (['1', 'true', 'yes', 'on'].includes(raw)) return true;
  if (['0', 'false', 'no', 'off'].includes(raw)) return false;
  throw new SettingsError(`${name}="${env[name]}" is not true or false.`);
}

const WINDOW_SECONDS: Record<string, number> = { s: 1, m: 60, h: 3600 };

/** "600/1m" -> 600 requests per 60 s; "off" -> no limit. */
export function parseRateLimit(raw: string): RateLimit | null {
  if (['off', 'false', '0'].includes(raw.trim().toLowerCase())) return null;
  const match = /^\s*(\d+)\s*\/\s*(\d*)\s*([smh])\s*$/.exec(raw);
  const requests = match ? Number(match[1]) : 0;
  const count = match && match[2] ? Number(match[2]) : 1;
  if (!match || requests < 1 || count < 1) {
    throw new SettingsError(
      `HUB_ROUTER_RATE_LIMIT="${raw}" is not like "600/1m" (requests per s, m or h) or "off".`,
    );
  }
  return { requests, perSeconds: count * WINDOW_SECONDS[match[3]] };
}

/** Routing URLs the supergraph was composed with: `join__graph(name: "x", url: "...")`. */
function composedSubgraphUrls(supergraphPath: string): Record<string, string> {
  const sdl = readFileSync(supergraphPath, 'utf8');
  const urls: Record<string, string> = {};
  for (const [, name, url] of sdl.matchAll(/@join__graph\(name: "([^"]+)", url: "([^"]+)"\)/g)) {
    urls[name] = url.replace(/\/graphql\/?$/, '');
  }
  return urls;
}

export function readSettings(env: Env = process.env): RouterSettings {
  const hubEnv = env.HUB_ENV || 'development';
  if (hubEnv !== 'development' && hubEnv !== 'test' && hubEnv !== 'production') {
    // A misspelt "production" must not quietly serve GraphiQL and introspection.
    throw new SettingsError(`HUB_ENV="${hubEnv}" is not one of development, test, production.`);
  }
  const supergraphPath = env.HUB_SUPERGRAPH
    ? resolve(env.HUB_SUPERGRAPH)
    : resolve(routerDir, '../schema/supergraph.graphql');

  // Compose writes the dev ports (8001-8004); HUB_<NAME>_URL moves a subgraph elsewhere
  // (a test stack, a container network).
  const subgraphUrls = composedSubgraphUrls(supergraphPath);
  for (const name of Object.keys(subgraphUrls)) {
    const override = env[`HUB_${name.toUpperCase()}_URL`];
    if (override) subgraphUrls[name] = override.replace(/\/+$/, '');
  }

  const timeoutSeconds = Number(env.HUB_ROUTER_SUBGRAPH_TIMEOUT || 30);
  if (!(timeoutSeconds > 0)) {
    throw new SettingsError(
      `HUB_ROUTER_SUBGRAPH_TIMEOUT="${env.HUB_ROUTER_SUBGRAPH_TIMEOUT}" is not a number of seconds > 0.`,
    );
  }

  const persisted = env.HUB_ROUTER_PERSISTED_DOCUMENTS || null;
  const metrics = (env.HUB_ROUTER_METRICS || 'standard').trim().toLowerCase();
  if (metrics !== 'standard' && metrics !== 'all') {
    throw new SettingsError(`HUB_ROUTER_METRICS="${env.HUB_ROUTER_METRICS}" is not standard or all.`);
  }
  return {
    env: hubEnv,
    isDev: hubEnv !== 'production',
    host: env.HUB_ROUTER_HOST || '127.0.0.1',
    port: integer(env, 'HUB_ROUTER_PORT', 8000),
    supergraphPath,
    deduplicate: flag(env, 'HUB_ROUTER_DEDUPLICATE', true),
    subgraphUrls,
    maxDepth: integer(env, 'HUB_ROUTER_MAX_DEPTH', 10),
    maxAliases: integer(env, 'HUB_ROUTER_MAX_ALIASES', 30),
    maxTokens: integer(env, 'HUB_ROUTER_MAX_TOKENS', 2000),
    maxCost: integer(env, 'HUB_ROUTER_MAX_COST', 5000),
    maxBodyBytes: integer(env, 'HUB_ROUTER_MAX_BODY_BYTES', 1 * MiB),
    maxUploadBytes: integer(env, 'HUB_ROUTER_MAX_UPLOAD_BYTES', 100 * MiB),
    subgraphTimeoutMs: Math.round(timeoutSeconds * 1000),
    corsOrigins: (env.HUB_ROUTER_CORS_ORIGINS || '')
      .split(',')
      .map((origin) => origin.trim().replace(/\/+$/, ''))
      .filter(Boolean),
    rateLimit: parseRateLimit(env.HUB_ROUTER_RATE_LIMIT || '1200/1m'),
    trustForwardedFor: flag(env, 'HUB_ROUTER_TRUST_FORWARDED_FOR', false),
    persistedDocuments: persisted ? resolve(persisted) : null,
    metrics,
    // With tracing on, the gateway's subgraph spans and trace headers come from the path the
    // lane skips: the lane stays off.
    fastLane:
      flag(env, 'HUB_ROUTER_FAST_LANE', true) &&
      !env.OTEL_EXPORTER_OTLP_ENDPOINT &&
      !env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT,
    // Repeats of requests the fast lane served, answered before GraphQL handling: only with
    // the fast lane, and not with HUB_ROUTER_METRICS=all (series it does not reproduce).
    earlyLane:
      flag(env, 'HUB_ROUTER_EARLY_LANE', true) &&
      flag(env, 'HUB_ROUTER_FAST_LANE', true) &&
      !env.OTEL_EXPORTER_OTLP_ENDPOINT &&
      !env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT &&
      metrics === 'standard',
    shareSubscriptions: flag(env, 'HUB_ROUTER_SHARE_SUBSCRIPTIONS', true),
    // The same variables the Python services read (subgraphs/common/settings.py).
    jwksUrl: env.HUB_JWKS_URL || `${subgraphUrls.identity}/.well-known/jwks.json`,
    jwtIssuer: env.HUB_JWT_ISSUER || 'hub-identity',
    jwtAudience: env.HUB_JWT_AUDIENCE || 'hub',
  };
}
