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
import { generateKeyPairSync } from 'node:crypto';

import { getOperationAST, type GraphQLError } from 'graphql';

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
const NO_TOKEN_VERIFIES = generateKeyPairSync('rsa', { modulusLength: 2048 })
  .publicKey.export({ type: 'spki', format: 'pem' })
  .toString();

// jwks-rsa's answers for a token naming no key or a key identity never published (and its
// refusal to refetch again so soon for yet another unknown key).
const UNKNOWN_KEY_ERRORS = new Set(['SigningKeyNotFoundError', 'JwksRateLimitError']);

// The JWT plugin answers a token whose key cannot be found with a bare Error, a 500
// ("Authentication is not available at the moment"). A key identity never published is a
// bad token, not an outage: verify it against a key nothing was signed with, so the plugin
// refuses it as any other bad token (401 UNAUTHENTICATED). An unreachable JWKS stays an error.
function identityKeys(settings: RouterSettings) {
  const remote = createRemoteJwksSigningKeyProvider({
    jwksUri: settings.jwksUrl,
    cache: true,
    cacheMaxAge: 5 * 60 * 1000,
    // A token naming a key not seen yet makes the client refetch the JWKS (rotation).
    rateLimit: true,
    jwksRequestsPerMinute: 60,
  });
  return async (kid?: string): Promise<string> => {
    try {
      return await remote(kid);
    } catch (error) {
      if (error instanceof Error && UNKNOWN_KEY_ERRORS.has(error.name)) return NO_TOKEN_VERIFIES;
      throw error;
    }
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
  };
}

export const genericAuthOptions = {
  mode: 'protect-granular' as const,
  resolveUserFn: (context: { jwt?: { payload?: Record<string, unknown> } }) =>
    context.jwt?.payload,
  rejectUnauthenticated: false,
};

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
