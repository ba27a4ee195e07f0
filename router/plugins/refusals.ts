// How the router says no. On the GraphQL endpoint a refusal is a GraphQL error with an
// `extensions.code`; on the REST paths it is application/problem+json (RFC 9457) with the
// same code, like the subgraphs' own REST errors. Never a bare status or a stack trace.
import { GraphQLError } from 'graphql';

export const GRAPHQL_PATH = '/graphql';
export const REST_PREFIX = '/api/';

export interface Refusal {
  status: number;
  code: string;
  message: string;
  headers?: Record<string, string>;
}

/** Throw from a GraphQL phase hook (onRequestParse, validation): Yoga renders it. */
export function graphqlRefusal({ status, code, message, headers }: Refusal): Error {
  return new GraphQLError(message, { extensions: { code, http: { status, headers } } });
}

/** A finished response, for refusals made before the request reaches GraphQL handling. */
export function refusalResponse(
  fetchAPI: { Response: typeof Response },
  url: URL,
  { status, code, message, headers }: Refusal,
): Response {
  if (url.pathname.startsWith(REST_PREFIX)) {
    const body = { type: 'about:blank', title: message, status, code };
    return new fetchAPI.Response(JSON.stringify(body), {
      status,
      headers: { 'content-type': 'application/problem+json', ...headers },
    });
  }
  const body = { errors: [{ message, extensions: { code } }] };
  return new fetchAPI.Response(JSON.stringify(body), {
    status,
    headers: { 'content-type': 'application/json; charset=utf-8', ...headers },
  });
}
