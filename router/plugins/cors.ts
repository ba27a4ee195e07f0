// Which web origins may call the router from a browser (HUB_ROUTER_CORS_ORIGINS), and the
// refusal of a request that carries any other Origin. Same-origin pages (GraphiQL at
// /graphql) always pass; in development so does any http://localhost:<port> page.
import type { GatewayConfig, GatewayPlugin } from '@graphql-hive/gateway';
import { refusalResponse } from './refusals.ts';
import type { RouterSettings } from './settings.ts';

const LOCAL_ORIGIN = /^https?:\/\/(localhost|127\.0\.0\.1|\[::1\])(:\d+)?$/;
const EXPOSED_HEADERS = ['X-Request-Id', 'Retry-After'];
const MAX_AGE_SECONDS = 600;

export function originAllowed(settings: RouterSettings, request: Request): boolean {
  return originAllowedFor(settings, request.headers.get('origin'), request.headers.get('host'));
}

/** `originAllowed` from the Origin and Host headers' values (null or undefined: absent). */
export function originAllowedFor(settings: RouterSettings, origin: string | null | undefined, host: string | null | undefined): boolean {
  if (!origin) return true; // not a browser's cross-origin request
  if (settings.corsOrigins.includes(origin)) return true;
  if (settings.isDev && LOCAL_ORIGIN.test(origin)) return true;
  try {
    return new URL(origin).host === host; // same origin
  } catch {
    return false;
  }
}

/**
 * What the CORS plugin (whatwg-node's useCORS, given `corsOptions` below) adds to the answer
 * of a request (not a preflight) from an allowed, non-empty Origin, with the names, values
 * and order it writes them in: for the early lane's server stage, which answers before that
 * plugin's onResponse would run. `requestMethod`, `requestHeaders`: the request's
 * Access-Control-Request-Method and -Headers, which the plugin echoes.
 */
export function corsHeadersFor(origin: string, requestMethod: string | undefined, requestHeaders: string | undefined): [string, string][] {
  const headers: [string, string][] = [['access-control-allow-origin', origin]];
  if (requestMethod) headers.push(['access-control-allow-methods', requestMethod]);
  if (requestHeaders) {
    headers.push(['access-control-allow-headers', requestHeaders], ['vary', 'Access-Control-Request-Headers']);
  }
  headers.push(
    ['access-control-allow-credentials', 'true'],
    ['access-control-expose-headers', EXPOSED_HEADERS.join(', ')],
    ['access-control-max-age', String(MAX_AGE_SECONDS)],
  );
  return headers;
}

export function corsOptions(settings: RouterSettings): GatewayConfig['cors'] {
  // false: no CORS headers, so the browser keeps the response from the page. (An empty
  // origin list would mean "allow every origin" to the CORS plugin, hence a function.)
  return (request: Request) =>
    request.headers.get('origin') && originAllowed(settings, request)
      ? {
          origin: [request.headers.get('origin')!],
          credentials: true,
          exposedHeaders: EXPOSED_HEADERS,
          maxAge: MAX_AGE_SECONDS,
        }
      : false;
}

export function useOriginCheck(settings: RouterSettings): GatewayPlugin {
  return {
    onRequest({ request, url, fetchAPI, endResponse }) {
      if (request.method !== 'OPTIONS' && !originAllowed(settings, request)) {
        endResponse(
          refusalResponse(fetchAPI, url, {
            status: 403,
            code: 'ORIGIN_NOT_ALLOWED',
            message: `Origin ${request.headers.get('origin')} may not call this API (HUB_ROUTER_CORS_ORIGINS).`,
          }),
        );
      }
    },
  };
}
