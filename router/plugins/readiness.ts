// /readiness with the subgraphs in it. The gateway's own check answers 200 once the
// supergraph is loaded; this adds each subgraph's /ready and a JSON body naming them:
//   200 {"status": "ready"}     supergraph loaded, every subgraph ready
//   200 {"status": "degraded"}  some subgraph is not: the router still serves the others'
//                               fields (and says which one failed), so it stays in the
//                               load balancer; pulling it would turn a partial outage
//                               into a total one
//   503 {"status": "unavailable"} no supergraph, or no subgraph answers
import type { GatewayPlugin } from '@graphql-hive/gateway';
import type { RouterSettings } from './settings.ts';

const READINESS_PATH = '/readiness';
const CHECK_TIMEOUT_MS = 2000;

async function subgraphState(fetchAPI: { fetch: typeof fetch }, base: string): Promise<string> {
  try {
    const response = await fetchAPI.fetch(`${base}/ready`, {
      signal: AbortSignal.timeout(CHECK_TIMEOUT_MS),
    });
    await response.body?.cancel();
    return response.ok ? 'ready' : `not ready (HTTP ${response.status})`;
  } catch (error) {
    const cause = (error as { cause?: { code?: string } })?.cause;
    return `unreachable (${cause?.code ?? (error as Error)?.name ?? 'error'})`;
  }
}

export function useSubgraphReadiness(settings: RouterSettings): GatewayPlugin {
  return {
    onResponse({ request, response, fetchAPI, setResponse }) {
      // Every response passes here: a URL is parsed only for one that may be /readiness.
      if (!request.url.includes(READINESS_PATH)) return;
      if (new URL(request.url, 'http://router').pathname !== READINESS_PATH) return;
      const supergraphLoaded = response.status === 200;
      const names = Object.keys(settings.subgraphUrls);
      return Promise.all(
        names.map((name) => subgraphState(fetchAPI, settings.subgraphUrls[name])),
      ).then((states) => {
        const subgraphs = Object.fromEntries(names.map((name, i) => [name, states[i]]));
        const readyCount = states.filter((state) => state === 'ready').length;
        const status = !supergraphLoaded || readyCount === 0
          ? 'unavailable'
          : readyCount < names.length
            ? 'degraded'
            : 'ready';
        const body = { status, supergraph: supergraphLoaded ? 'loaded' : 'not loaded', subgraphs };
        const headers = new fetchAPI.Headers(response.headers); // keeps X-Request-Id
        headers.set('content-type', 'application/json');
        headers.delete('content-length');
        setResponse(
          new fetchAPI.Response(JSON.stringify(body), {
            status: status === 'unavailable' ? 503 : 200,
            headers,
          }),
        );
      });
    },
  };
}
