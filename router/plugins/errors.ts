// What a client sees of an error. Yoga's masking hides unexpected errors behind
// "Unexpected error." (INTERNAL_SERVER_ERROR); that would also hide *which* subgraph could
// not be reached, the one thing a client (and an on-call engineer) needs to know when a
// subgraph is down. Those errors get their own code and name the subgraph; everything else
// is masked as before.
import { GraphQLError } from 'graphql';
import { maskError as yogaMaskError } from 'graphql-yoga';

// What the gateway's HTTP transport reports when the subgraph did not answer (refused,
// reset, DNS) or answered with something that is not GraphQL.
const UNREACHABLE_CODES = new Set(['SUBREQUEST_HTTP_ERROR', 'DOWNSTREAM_SERVICE_ERROR']);

function subgraphFailure(error: unknown): { serviceName: string; code: string } | null {
  for (let e = error as any; e; e = e.originalError ?? e.cause) {
    const ext = e.extensions;
    if (ext?.serviceName && UNREACHABLE_CODES.has(ext.code)) return ext;
    if (ext?.serviceName && ext.code === 'GATEWAY_TIMEOUT') return ext;
  }
  return null;
}

// The JWT plugin refuses a bad token with a bare message ("Unauthenticated", "Invalid
// authentication token provided") and only an HTTP status. Such a refusal gets the code the
// subgraphs use for the same thing, so a client branches on one code over HTTP, SSE and
// WebSocket alike (plugins/auth.ts for the HTTP path, maskError below for the others).
export function isAuthenticationRefusal(error: unknown): error is GraphQLError {
  if (!(error instanceof GraphQLError) || error.extensions?.code) return false;
  const status = (error.extensions?.http as { status?: number } | undefined)?.status;
  return status === 401 || /authentication token/i.test(error.message);
}

export function withAuthenticationCode(error: GraphQLError): GraphQLError {
  return new GraphQLError(error.message, {
    extensions: { ...error.extensions, code: 'UNAUTHENTICATED' },
  });
}

export function maskError(error: unknown, message: string, isDev?: boolean): Error {
  if (isAuthenticationRefusal(error)) return withAuthenticationCode(error);
  const failure = subgraphFailure(error);
  if (failure) {
    const timedOut = failure.code === 'GATEWAY_TIMEOUT';
    const source = error instanceof GraphQLError ? error : undefined;
    return new GraphQLError(
      timedOut
        ? `Subgraph ${failure.serviceName} did not answer in time.`
        : `Subgraph ${failure.serviceName} is unavailable.`,
      {
        nodes: source?.nodes,
        path: source?.path,
        extensions: {
          code: timedOut ? 'SUBGRAPH_TIMEOUT' : 'SUBGRAPH_UNAVAILABLE',
          serviceName: failure.serviceName,
        },
      },
    );
  }
  return yogaMaskError(error, message, isDev);
}
