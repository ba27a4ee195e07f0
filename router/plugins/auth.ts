// Authentication at the front door: the router verifies identity's RS256 access tokens
// against its JWKS and enforces @authenticated / @requiresScopes from the supergraph. It is
// the first check, not the only one: the token goes on to the subgraphs, which verify it
// again (a subgraph never trusts what the router, or anyone, says about the caller).
import {
  createRemoteJwksSigningKeyProvider,
  extractFromHeader,
  type ExtractTokenFunction,
  type GatewayPlugin,
  type JWTAuthPluginOptions,
} from '@graphql-hive/gateway';
import { createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';

import {
  getOperationAST,
  Kind,
  type DocumentNode,
  type GraphQLError,
  type SelectionSetNode,
} from 'graphql';

import { isAuthenticationRefusal, withAuthenticationCode } from './errors.ts';

import type { RouterSettings } from './settings.ts';

// A WebSocket client authenticates in connection_init: {"Authorization": "Bearer <token>"}.
export function connectionParamsAuthorization(context: unknown): string | undefined {
  const params = (context as { connectionParams?: Record<string, unknown> } | undefined)
    ?.connectionParams;
  const value = params?.Authorization ?? params?.authorization;
  return typeof value === 'string' ? value : undefined;
}

const fromConnectionParams: ExtractTokenFunction = ({ serverContext }) => {
  const value = connectionParamsAuthorization(serverContext);
  if (value === undefined) return undefined;
  const [scheme, token] = value.split(' ', 2);
  return token && scheme.toLowerCase() === 'bearer' ? { token, prefix: 'Bearer' } : undefined;
};

// A public key whose private half was thrown away: no token verifies against it.
const NO_TOKEN_VERIFIES = generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey;

// jwks-rsa's answers for a token naming no key or a key identity never published (and its
// refusal to refetch again so soon for yet another unknown key).
const UNKNOWN_KEY_ERRORS = new Set(['SigningKeyNotFoundError', 'JwksRateLimitError']);

// The JWT plugin answers a token whose key cannot be found with a bare Error, a 500
// ("Authentication is not available at the moment"). A key identity never published is a
// bad token, not an outage: verify it against a key nothing was signed with, so the plugin
// refuses it as any other bad token (401 UNAUTHENTICATED). An unreachable JWKS stays an error.
//
// Keys are handed to the plugin as parsed KeyObjects, kept per key id for a minute. Given the
// PEM text jwks-rsa returns (which it re-exports from its cached key on every call), jsonwebtoken
// parses it into a key again on every verification: that cost more than the RSA check itself
// (~0.15 of ~0.2 ms per request). A key identity withdraws (rotation) stays usable at most a
// minute longer than before, on top of jwks-rsa's own 5-minute cache.
const PARSED_KEY_SECONDS = 60;

function identityKeys(settings: RouterSettings) {
  const remote = createRemoteJwksSigningKeyProvider({
    jwksUri: settings.jwksUrl,
    cache: true,
    cacheMaxAge: 5 * 60 * 1000,
    // A token naming a key not seen yet makes the client refetch the JWKS (rotation).
    rateLimit: true,
    jwksRequestsPerMinute: 60,
  });
  const parsed = new Map<string, { key: KeyObject; until: number }>(); // kid -> key
  const fetchKey = async (kid: string | undefined, now: number): Promise<KeyObject> => {
    try {
      const key = createPublicKey(await remote(kid));
      // Without a kid jwks-rsa answers only while the JWKS holds a single key: not remembered.
      if (kid !== undefined) {
        if (parsed.size >= 100) parsed.clear(); // only ever identity's few current keys
        parsed.set(kid, { key, until: now + PARSED_KEY_SECONDS * 1000 });
      }
      return key;
    } catch (error) {
      if (error instanceof Error && UNKNOWN_KEY_ERRORS.has(error.name)) return NO_TOKEN_VERIFIES;
      throw error;
    }
  };
  // jsonwebtoken takes a KeyObject as well as a string; the plugin's typing only says string.
  // A key already parsed is returned as it is, without a promise (the plugin takes either).
  return (kid?: string): Promise<string> => {
    const now = Date.now();
    const known = kid === undefined ? undefined : parsed.get(kid);
    const key = known && known.until > now ? known.key : fetchKey(kid, now);
    return key as unknown as Promise<string>;
  };
}

export function jwtOptions(settings: RouterSettings): JWTAuthPluginOptions {
  return {
    signingKeyProviders: [identityKeys(settings)],
    tokenLookupLocations: [
      extractFromHeader({ name: 'authorization', prefix: 'Bearer' }),
      fromConnectionParams,
    ],
    tokenVerification: {
      algorithms: ['RS256'],
      issuer: settings.jwtIssuer,
      audience: settings.jwtAudience,
    },
    // Anonymous callers may still read public fields; a bad token is refused outright.
    reject: { missingToken: false, invalidToken: true },
    // The plugin would copy the verified claims into every subgraph request's
    // `extensions.jwt`. No subgraph reads them (each verifies the Authorization header
    // itself), and each subgraph would parse the extra ~600 bytes on every request.
    forward: { payload: false, token: false },
  };
}

// Verified access tokens, remembered by their text until they expire, and for a minute at
// most (so a token signed with a key identity withdraws is refused a minute later at worst,
// beside the key caches above). Verifying an
// RS256 token (the plugin decodes it twice and checks the signature) cost ~0.2 ms of router
// CPU on every request; a signed-in client sends the same token for its whole lifetime.
// The router never checked revocation (subgraphs do, with a Redis lookup per request), so
// remembering a verified token changes nothing about a revoked session.
//
// The JWT plugin verifies nothing when the server context already carries `jwt`: onRequest
// (which runs before it) puts the remembered result there. Only a token the plugin verified
// itself is remembered (onContextBuilding, after the plugin filled `context.jwt`), and only
// for the exact header form the plugin reads, `Authorization: Bearer <token>`; anything else
// goes through the plugin every time.
const REMEMBERED_TOKEN_SECONDS = 60;
const MAX_REMEMBERED_TOKENS = 10_000;
const BEARER = 'Bearer ';

export interface VerifiedJwt {
  payload: Record<string, unknown>;
  token: { value: string; prefix?: string };
}

/**
 * The tokens the JWT plugin verified, by their text, each until it expires (and a minute at
 * most). One store is shared by the plugin below and the early lane (plugins/early-lane.ts),
 * which serves only a request whose token is found here, unexpired.
 */
export interface RememberedJwt {
  jwt: VerifiedJwt;
  until: number;
}

export class VerifiedTokens {
  private readonly verified = new Map<string, RememberedJwt>(); // oldest first

  /** The verified token of an `Authorization: Bearer <token>` header, or undefined. */
  lookup(header: string | null): VerifiedJwt | undefined {
    const known = this.rememberedFor(header);
    return known === undefined ? undefined : known.jwt;
  }

  /**
   * The verified token of an `Authorization: Bearer <token>` header and until when it may be
   * used (Date.now() milliseconds), or undefined. Looking a token up hashes its text (~1 % of
   * the router's CPU for the early lane, which holds on to this instead of asking again).
   */
  rememberedFor(header: string | null): RememberedJwt | undefined {
    if (header === null || !header.startsWith(BEARER)) return undefined;
    const token = header.slice(BEARER.length);
    const known = this.verified.get(token);
    if (!known) return undefined;
    if (known.until <= Date.now()) {
      this.verified.delete(token);
      return undefined;
    }
    return known;
  }

  /** Remember what the JWT plugin put into a request's context after verifying its token. */
  remember(jwt: VerifiedJwt | undefined): void {
    const token = jwt?.token?.value;
    const exp = jwt?.payload?.exp;
    if (!token || typeof exp !== 'number' || this.verified.has(token)) return;
    const until = Math.min(exp * 1000, Date.now() + REMEMBERED_TOKEN_SECONDS * 1000);
    if (this.verified.size >= MAX_REMEMBERED_TOKENS) this.verified.delete(this.verified.keys().next().value!);
    this.verified.set(token, { jwt: { payload: jwt!.payload, token: jwt!.token }, until });
  }
}

export function useVerifiedTokenCache(tokens: VerifiedTokens = new VerifiedTokens()): GatewayPlugin {
  return {
    onRequest({ request, serverContext }) {
      const known = tokens.lookup(request.headers.get('authorization'));
      if (known) (serverContext as { jwt?: VerifiedJwt }).jwt = known;
    },
    onContextBuilding({ context }) {
      tokens.remember((context as { jwt?: VerifiedJwt }).jwt);
    },
  };
}

// When every field of an operation is refused, genericAuth leaves an operation with nothing
// to select, which the query planner cannot parse ("Unexpected end of input"). Answer such an
// operation here, with the refusals genericAuth collected, instead of planning it.
export function useNothingLeftToPlan(): GatewayPlugin {
  return {
    onExecute({ args, setResultAndStopExecution }) {
      const operation = getOperationAST(args.document, args.operationName);
      if (operation && operation.selectionSet.selections.length === 0) {
        setResultAndStopExecution({ data: null });
      }
    },
  };
}

// genericAuth (protect-granular) rewrites every operation before it runs, dropping the fields
// the caller may not see, and hands on a new document object even when nothing was dropped.
// The Rust planner's runtime caches plans by document object, so every request was planned
// again (printing the document and a call into the planner). When the rewrite removed
// nothing, the document parsed (and cached) for the query text is put back, so its plan is
// found. A rewrite that did remove fields is left as it is: its plan is made for it.
// Register it after genericAuth (any plugin in gateway.config.ts is).
export function useCachedPlansForAuthorizedDocuments(): GatewayPlugin {
  const parsed = new WeakMap<object, DocumentNode>();
  const restore = ({ args }: { args: { contextValue: unknown; document: DocumentNode } }) => {
    const original = parsed.get(args.contextValue as object);
    if (original && original !== args.document && sameDocument(original, args.document)) {
      args.document = original;
    }
  };
  return {
    onParse({ context }) {
      return ({ result }) => {
        if (result && !(result instanceof Error)) parsed.set(context, result as DocumentNode);
      };
    },
    onExecute: restore,
    onSubscribe: restore,
  };
}

// Structural equality of what genericAuth's rewrite can change: which selections remain.
// Everything else (arguments, directives, variables) it carries over by reference, so those
// are compared by identity; any other difference counts as a difference.
function sameSelections(a: SelectionSetNode, b: SelectionSetNode): boolean {
  if (a === b) return true;
  if (a.selections.length !== b.selections.length) return false;
  return a.selections.every((x, i) => {
    const y = b.selections[i];
    if (x === y) return true;
    if (x.kind !== y.kind || x.directives !== y.directives) return false;
    switch (x.kind) {
      case Kind.FIELD: {
        if (y.kind !== Kind.FIELD) return false;
        if (x.name.value !== y.name.value || x.alias?.value !== y.alias?.value) return false;
        if (x.arguments !== y.arguments) return false;
        if (!x.selectionSet || !y.selectionSet) return x.selectionSet === y.selectionSet;
        return sameSelections(x.selectionSet, y.selectionSet);
      }
      case Kind.INLINE_FRAGMENT:
        return (
          y.kind === Kind.INLINE_FRAGMENT &&
          x.typeCondition?.name.value === y.typeCondition?.name.value &&
          sameSelections(x.selectionSet, y.selectionSet)
        );
      case Kind.FRAGMENT_SPREAD:
        return y.kind === Kind.FRAGMENT_SPREAD && x.name.value === y.name.value;
    }
  });
}

export function sameDocument(a: DocumentNode, b: DocumentNode): boolean {
  if (a.definitions.length !== b.definitions.length) return false;
  return a.definitions.every((x, i) => {
    const y = b.definitions[i];
    if (x === y) return true;
    if (x.kind === Kind.OPERATION_DEFINITION && y.kind === Kind.OPERATION_DEFINITION) {
      return (
        x.operation === y.operation &&
        x.name?.value === y.name?.value &&
        x.variableDefinitions === y.variableDefinitions &&
        x.directives === y.directives &&
        sameSelections(x.selectionSet, y.selectionSet)
      );
    }
    if (x.kind === Kind.FRAGMENT_DEFINITION && y.kind === Kind.FRAGMENT_DEFINITION) {
      return (
        x.name.value === y.name.value &&
        x.typeCondition.name.value === y.typeCondition.name.value &&
        x.directives === y.directives &&
        sameSelections(x.selectionSet, y.selectionSet)
      );
    }
    return false;
  });
}

// The JWT plugin's refusals on plain HTTP and SSE requests get extensions.code
// UNAUTHENTICATED here (it throws them before context building, where maskError sees them).
export function useAuthenticationErrorCodes(): GatewayPlugin {
  return {
    onResultProcess({ result, setResult }) {
      if (Array.isArray(result) || !result || typeof result !== 'object' || !('errors' in result))
        return;
      const errors = result.errors as readonly GraphQLError[] | undefined;
      if (!errors?.some(isAuthenticationRefusal)) return;
      setResult({
        ...result,
        errors: errors.map((error) =>
          isAuthenticationRefusal(error) ? withAuthenticationCode(error) : error,
        ),
      });
    },
  };
}
