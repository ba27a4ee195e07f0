// CSRF prevention for GraphQL requests a browser could send cross-site without a CORS
// preflight: GET, and POST with a form or text/plain content type (multipart uploads
// included). Those need one of the headers below, which a cross-site form cannot set;
// JSON POSTs are always preflighted and pass. Yoga's own plugin has the same rule but no
// `extensions.code` on its error.
import type { GatewayPlugin } from '@graphql-hive/gateway';
import { graphqlRefusal } from './refusals.ts';

export const CSRF_HEADERS = ['x-graphql-csrf', 'apollo-require-preflight', 'graphql-preflight'];
const SIMPLE_CONTENT_TYPES = ['application/x-www-form-urlencoded', 'multipart/form-data', 'text/plain'];

export function useCsrfPrevention(): GatewayPlugin {
  return {
    onRequestParse({ request }) {
      const type = request.headers.get('content-type')?.toLowerCase();
      const preflighted = type && !SIMPLE_CONTENT_TYPES.some((simple) => type.startsWith(simple));
      if (preflighted || CSRF_HEADERS.some((name) => request.headers.has(name))) return;
      throw graphqlRefusal({
        status: 403,
        code: 'CSRF_HEADER_REQUIRED',
        message: `A request without a JSON body needs one of the headers ${CSRF_HEADERS.join(', ')}.`,
      });
    },
  };
}
