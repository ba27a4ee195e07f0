// A per-client request budget (HUB_ROUTER_RATE_LIMIT, e.g. "1200/1m"): a token bucket per
// client, in this process's memory. With several router instances each keeps its own
// buckets, so the effective limit is per instance.
//
// Who the client is: the signed-in user (the verified token's `sub`) when the request
// carries a valid access token, else its address. So users behind one NAT or proxy each
// have their own budget, and one user gets one budget however many tokens (logins) or
// addresses they use. Each request is charged once, to one bucket. The token is verified
// here (signature against identity's JWKS, issuer, audience, expiry) because a `sub` taken
// on trust would let anyone mint a fresh budget per request; a token that does not verify
// is charged to the address (and then refused by the JWT plugin). Verified tokens are
// remembered until they expire, so the signature is checked once per token, not per request.
//
// A WebSocket counts once, at its upgrade (by address: its token comes later, in
// connection_init); the operations on an open socket are not counted.
import { createPublicKey, verify, type KeyObject } from 'node:crypto';

import { createRemoteJwksSigningKeyProvider, type GatewayPlugin } from '@graphql-hive/gateway';

import { clientAddress } from './client.ts';
import { refusalResponse } from './refusals.ts';
import type { RouterSettings } from './settings.ts';

// Probes and scrapes are not client traffic.
const EXEMPT_PATHS = new Set(['/healthcheck', '/readiness', '/metrics']);
// Bounds memory under a flood of distinct clients or tokens; the least recently seen go first.
const MAX_CLIENTS = 100_000;
const MAX_REMEMBERED_TOKENS = 100_000;

interface Bucket {
  tokens: number;
  updated: number; // ms
}

interface VerifiedToken {
  subject: string;
  expiresAt: number; // ms
}

type KeyLookup = (kid: string) => Promise<string | undefined> | undefined;

function base64url(part: string): Buffer {
  return Buffer.from(part, 'base64url');
}

/** The `sub` of a valid RS256 access token of this deployment; undefined for anything else. */
export async function verifiedSubject(
  token: string,
  keyFor: KeyLookup,
  expect: { issuer: string; audience: string },
  now = Date.now(),
): Promise<VerifiedToken | undefined> {
  const parts = token.split('.');
  if (parts.length !== 3) return undefined;
  try {
    const header = JSON.parse(base64url(parts[0]).toString('utf8'));
    if (header.alg !== 'RS256' || typeof header.kid !== 'string') return undefined;
    const pem = await keyFor(header.kid);
    if (!pem) return undefined;
    const key: KeyObject = createPublicKey(pem);
    const signed = Buffer.from(`${parts[0]}.${parts[1]}`);
    if (!verify('RSA-SHA256', signed, key, base64url(parts[2]))) return undefined;
    const claims = JSON.parse(base64url(parts[1]).toString('utf8'));
    const audiences = Array.isArray(claims.aud) ? claims.aud : [claims.aud];
    if (claims.iss !== expect.issuer || !audiences.includes(expect.audience)) return undefined;
    if (typeof claims.exp !== 'number' || claims.exp * 1000 <= now) return undefined;
    if (typeof claims.sub !== 'string' || !claims.sub) return undefined;
    return { subject: claims.sub, expiresAt: claims.exp * 1000 };
  } catch {
    return undefined; // malformed, or the JWKS is unreachable: counted by address
  }
}

function bearerToken(request: Request): string | undefined {
  const header = request.headers.get('authorization');
  if (header === null) return undefined;
  const [scheme, token] = header.split(' ', 2);
  return token && scheme.toLowerCase() === 'bearer' ? token.trim() : undefined;
}

export function useRateLimit(settings: RouterSettings): GatewayPlugin {
  const limit = settings.rateLimit;
  if (!limit) return {};
  const refillPerMs = limit.requests / (limit.perSeconds * 1000);
  const buckets = new Map<string, Bucket>(); // insertion order = least recently seen first
  const verified = new Map<string, VerifiedToken>();
  const keyFor: KeyLookup = createRemoteJwksSigningKeyProvider({
    jwksUri: settings.jwksUrl,
    cache: true,
    cacheMaxAge: 5 * 60 * 1000,
    rateLimit: true,
    jwksRequestsPerMinute: 60,
  });
  const expect = { issuer: settings.jwtIssuer, audience: settings.jwtAudience };

  async function clientOf(request: Request, serverContext: unknown): Promise<string> {
    const token = bearerToken(request);
    if (token) {
      const now = Date.now();
      let known = verified.get(token);
      if (!known || known.expiresAt <= now) {
        verified.delete(token);
        known = await verifiedSubject(token, keyFor, expect, now);
        if (known) {
          verified.set(token, known);
          if (verified.size > MAX_REMEMBERED_TOKENS) verified.delete(verified.keys().next().value!);
        }
      }
      if (known) return `user:${known.subject}`;
    }
    return `address:${clientAddress(request, serverContext, settings.trustForwardedFor)}`;
  }

  return {
    async onRequest({ request, url, serverContext, fetchAPI, endResponse }) {
      if (EXEMPT_PATHS.has(url.pathname) || request.method === 'OPTIONS') return;
      const client = await clientOf(request, serverContext);
      const now = Date.now();
      const bucket = buckets.get(client) || { tokens: limit.requests, updated: now };
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
