// Which web origins may call the router from a browser (HUB_ROUTER_CORS_ORIGINS), and the
// refusal of a request that carries any other Origin. Same-origin pages (GraphiQL at
// /graphql) always pass; in development so does any http://localhost:<port> page.
import type { GatewayConfig, GatewayPlugin } from '@graphql-hive/gateway';
import { refusalResponse } from './refusals.ts';
import type { RouterSettings } from './settings.ts';

const LOCAL_ORIGIN = /^https?:\/\/(localhost|127\.0\.0\.1|\[::1\])(:\d+)?$/;

export function originAllowed(settings: RouterSettings, request: Request): boolean {
  const origin = request.headers.get('origin');
  if (!origin) return true; // not a browser's cross-origin request
  if (settings.corsOrigins.includes(origin)) return true;
  if (settings.isDev && LOCAL_ORIGIN.test(origin)) return true;
  try {
    return new URL(origin).host === request.headers.get('host'); // same origin
  } catch {
    return false;
  }
}

export function corsOptions(settings: RouterSettings): GatewayConfig['cors'] {
  // false: no CORS headers, so the browser keeps the response from the page. (An empty
  // origin list would mean "allow every origin" to the CORS plugin, hence a function.)
  return (request: Request) =>
    request.headers.get('origin') && originAllowed(settings, request)
      ? {
          origin: [request.headers.get('origin')!],
          credentials: true,
          exposedHeaders: ['X-Request-Id', 'Retry-After'],
          maxAge: 600,
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
