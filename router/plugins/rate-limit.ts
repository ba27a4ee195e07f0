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
import type { IncomingMessage } from 'node:http';

import { createRemoteJwksSigningKeyProvider, type GatewayPlugin } from '@graphql-hive/gateway';

import { clientAddress, nodeRequestOf } from './client.ts';
import { refusalResponse } from './refusals.ts';
import type { RateLimit, RouterSettings } from './settings.ts';

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

type KeyLookup = (kid: string) => Promise<string | undefined> | string | undefined;

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

function bearerToken(authorization: string | null): string | undefined {
  if (authorization === null) return undefined;
  const [scheme, token] = authorization.split(' ', 2);
  return token && scheme.toLowerCase() === 'bearer' ? token.trim() : undefined;
}

/**
 * The buckets and the tokens verified for them: one per router process, shared by the plugin
 * below and the early lane's server stage (early-lane.ts), so a request is charged to the same
 * bucket whichever of them answers it.
 */
export class RateLimiter {
  private readonly limit: RateLimit;
  private readonly refillPerMs: number;
  private readonly buckets = new Map<string, Bucket>(); // insertion order = least recently seen first
  private readonly verified = new Map<string, VerifiedToken>();
  private readonly keyFor: KeyLookup;
  private readonly expect: { issuer: string; audience: string };
  private readonly trustForwardedFor: boolean;
  // Requests the early lane's server stage charged before handing them on: charged once.
  private readonly prepaid = new WeakSet<IncomingMessage>();

  constructor(limit: RateLimit, settings: RouterSettings) {
    this.limit = limit;
    this.refillPerMs = limit.requests / (limit.perSeconds * 1000);
    this.keyFor = createRemoteJwksSigningKeyProvider({
      jwksUri: settings.jwksUrl,
      cache: true,
      cacheMaxAge: 5 * 60 * 1000,
      rateLimit: true,
      jwksRequestsPerMinute: 60,
    });
    this.expect = { issuer: settings.jwtIssuer, audience: settings.jwtAudience };
    this.trustForwardedFor = settings.trustForwardedFor;
  }

  static of(settings: RouterSettings): RateLimiter | undefined {
    return settings.rateLimit ? new RateLimiter(settings.rateLimit, settings) : undefined;
  }

  /** The client a request is charged to, verifying its token if this limiter has not yet. */
  async clientOf(authorization: string | null, forwardedFor: string | null, req: IncomingMessage | undefined): Promise<string> {
    const known = this.knownClientOf(authorization, forwardedFor, req);
    if (known !== undefined) return known;
    const token = bearerToken(authorization)!;
    const now = Date.now();
    const subject = await verifiedSubject(token, this.keyFor, this.expect, now);
    if (subject) {
      this.verified.set(token, subject);
      if (this.verified.size > MAX_REMEMBERED_TOKENS) this.verified.delete(this.verified.keys().next().value!);
      return `user:${subject.subject}`;
    }
    return `address:${clientAddress(forwardedFor, req, this.trustForwardedFor)}`;
  }

  /**
   * The client, when it is known without verifying anything: an anonymous request's address,
   * or the user of a token this limiter has verified and that has not expired. Undefined for
   * a token still to be verified.
   */
  knownClientOf(authorization: string | null, forwardedFor: string | null, req: IncomingMessage | undefined): string | undefined {
    const token = bearerToken(authorization);
    if (token) {
      const known = this.verified.get(token);
      if (known && known.expiresAt > Date.now()) return `user:${known.subject}`;
      this.verified.delete(token);
      return undefined;
    }
    return `address:${clientAddress(forwardedFor, req, this.trustForwardedFor)}`;
  }

  /** Charge one request to the client's bucket: undefined when within the budget, else the
   * seconds until it has room again (nothing is charged then). */
  charge(client: string): number | undefined {
    const now = Date.now();
    const bucket = this.buckets.get(client) || { tokens: this.limit.requests, updated: now };
    bucket.tokens = Math.min(this.limit.requests, bucket.tokens + (now - bucket.updated) * this.refillPerMs);
    bucket.updated = now;
    this.buckets.delete(client);
    this.buckets.set(client, bucket);
    if (this.buckets.size > MAX_CLIENTS) this.buckets.delete(this.buckets.keys().next().value!);

    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      return undefined;
    }
    return Math.max(1, Math.ceil((1 - bucket.tokens) / this.refillPerMs / 1000));
  }

  /** `charge`, for a request that may still go on to the plugin below, which then skips it. */
  chargeAhead(client: string, req: IncomingMessage): number | undefined {
    const retryAfter = this.charge(client);
    if (retryAfter === undefined) this.prepaid.add(req);
    return retryAfter;
  }

  chargedAhead(req: IncomingMessage): boolean {
    return this.prepaid.has(req);
  }

  describe(): string {
    return `${this.limit.requests} requests per ${this.limit.perSeconds}s`;
  }
}

export function useRateLimit(limiter: RateLimiter | undefined): GatewayPlugin {
  if (!limiter) return {};
  return {
    async onRequest({ request, url, serverContext, fetchAPI, endResponse }) {
      if (EXEMPT_PATHS.has(url.pathname) || request.method === 'OPTIONS') return;
      const req = nodeRequestOf(serverContext);
      if (req !== undefined && limiter.chargedAhead(req)) return;
      const client = await limiter.clientOf(
        request.headers.get('authorization'),
        request.headers.get('x-forwarded-for'),
        req,
      );
      const retryAfter = limiter.charge(client);
      if (retryAfter === undefined) return;
      endResponse(
        refusalResponse(fetchAPI, url, {
          status: 429,
          code: 'TOO_MANY_REQUESTS',
          message: `Rate limit of ${limiter.describe()} exceeded; retry in ${retryAfter}s.`,
          headers: { 'retry-after': String(retryAfter) },
        }),
      );
    },
  };
}
