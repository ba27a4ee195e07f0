// The router overhead's reference: a bare Node proxy in front of content. Node's own HTTP
// server and client (a keep-alive agent), forwarding POST /graphql as it comes and the answer
// as it comes back, with nothing else: no GraphQL, no checks, no metrics. What a router built
// on Node's http module spends at least on a request, on this machine; the router's lanes ask
// subgraphs through a leaner client of their own (router/plugins/subgraph-client.ts) and
// spend less.
//   node bare-proxy.mjs <content base URL> <port>
import http from 'node:http';

const [target, port] = [new URL(process.argv[2]), Number(process.argv[3])];
const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });
const PASSED_ON = ['content-type', 'authorization', 'x-request-id'];

function forward(req, res, body) {
  const headers = { 'content-length': body.length };
  for (const name of PASSED_ON) if (req.headers[name] !== undefined) headers[name] = req.headers[name];
  const upstream = http.request(
    { host: target.hostname, port: target.port, path: req.url, method: req.method, headers, agent },
    (answer) => {
      const chunks = [];
      answer.on('data', (chunk) => chunks.push(chunk));
      answer.on('end', () => {
        const data = Buffer.concat(chunks);
        res.writeHead(answer.statusCode, {
          'content-type': answer.headers['content-type'] || 'application/json',
          'content-length': data.length,
        });
        res.end(data);
      });
    },
  );
  upstream.on('error', () => {
    res.writeHead(502);
    res.end();
  });
  upstream.end(body);
}

http
  .createServer((req, res) => {
    const chunks = [];
    req.on('data', (chunk) => chunks.push(chunk));
    req.on('end', () => forward(req, res, Buffer.concat(chunks)));
  })
  .listen(port, '127.0.0.1');
