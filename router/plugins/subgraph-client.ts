// The lanes' client for their subgraph requests (fast-lane.ts, early-lane.ts): HTTP/1.1 over
// kept-alive node:net connections, one request at a time on each. Node's own http client (its
// Agent, ClientRequest and OutgoingMessage, the IncomingMessage and their events) cost a bare
// Node proxy 0.156 ms of CPU per request where asking this way cost 0.088 ms, measured side by
// side (README, Performance); on two cores every such millisecond is taken from the subgraphs.
//
// It understands only what a subgraph's plain answer is: a status line, headers and a body of
// the Content-Length they give. Anything else is unreadable (a Transfer-Encoding, a 1xx, a
// body without a length, bytes after the answer, a header block over MAX_HEAD_BYTES), and a
// connection that breaks is a failure. The lane then hands the request to the normal path,
// which asks again through the gateway's own client: nothing this client does not read goes
// unanswered, it only costs a second request. A request that fails on a
// kept connection before any byte of its answer came (the subgraph closed that connection
// meanwhile) is sent once more on a new one: lane requests are queries.
//
// (No `?.` or `??` on this path: the gateway's TypeScript loader turns each into helper calls
// with an array and closures, on every request.)
import { connect, type Socket } from 'node:net';

/** What the lane needs of a subgraph's answer. */
export interface SubgraphAnswer {
  status: number;
  statusText: string;
  contentType?: string;
  contentEncoding?: string;
  body?: Buffer;
  timedOut?: boolean;
  failed?: boolean; // no answer: the connection could not be made, or broke
  unreadable?: boolean; // an answer this client does not read (above)
}

/** What cancels a request (an AbortSignal, or the early lane's lighter ClientGone). */
export interface Cancellation {
  readonly aborted: boolean;
  addEventListener(type: 'abort', listener: () => void, options?: { once?: boolean }): void;
  removeEventListener(type: 'abort', listener: () => void): void;
}

// The most a status line and headers may take; a subgraph's are a few hundred bytes.
const MAX_HEAD_BYTES = 64 * 1024;
// What a header value may hold to be written as it is (what a token or request id holds).
const PLAIN_VALUE = /^[\t\x20-\x7e]*$/;
const STATUS_LINE = /^HTTP\/1\.([01]) (\d{3})(?: (.*))?$/;
const DIGITS = /^\d+$/;

interface Head {
  status: number;
  statusText: string;
  length: number;
  keepAlive: boolean;
  contentType?: string;
  contentEncoding?: string;
}

/** One request and its wait for an answer. */
class Exchange {
  settled = false;
  retried = false;
  timer: ReturnType<typeof setTimeout> | undefined = undefined;
  connection: Connection | undefined = undefined;
  onAbort: (() => void) | undefined = undefined;

  constructor(
    readonly text: string,
    readonly signal: Cancellation | undefined,
    readonly resolve: (answer: SubgraphAnswer) => void,
  ) {}
}

/** A kept-alive connection to the subgraph and the answer it is reading, if any. */
class Connection {
  exchange: Exchange | undefined = undefined;
  served = 0; // answers read whole on it
  idleSince = 0;
  head: Head | undefined = undefined;
  chunks: Buffer[] = [];
  received = 0; // bytes of the current answer so far (of its body once the head is read)
  closed = false;

  constructor(readonly socket: Socket) {}
}

/** Keep-alive connections to one subgraph (host and port). */
export class SubgraphConnections {
  private readonly free: Connection[] = []; // the most recently used last
  private readonly waiting: Exchange[] = [];
  private open = 0;
  private readonly requestLine: string; // and the Host header

  constructor(
    private readonly host: string,
    private readonly port: number,
    private readonly path: string,
    private readonly basicAuth: string | undefined, // from user:password in the URL
    private readonly maxConnections = 256,
    private readonly idleMs = 5000,
  ) {
    const hostHeader = host.includes(':') ? `[${host}]` : host;
    this.requestLine = `POST ${path} HTTP/1.1\r\nHost: ${port === 80 ? hostHeader : `${hostHeader}:${port}`}\r\n`;
    // Idle connections are closed after idleMs, well before a subgraph closes its side (65 s).
    setInterval(() => this.closeIdle(Date.now()), idleMs).unref();
  }

  /**
   * POST `body` (JSON) with `headers` (name to value; Host, Content-Length and Connection are
   * this client's). Resolves with the answer, or `timedOut` after `ms`, or `failed`, or
   * `unreadable`; never rejects. Throws for a header value it does not write (not plain ASCII:
   * never a verified token or a request id), which the lanes answer by the normal path.
   */
  post(headers: Record<string, string>, body: string, ms: number, signal?: Cancellation): Promise<SubgraphAnswer> {
    let text = this.requestLine;
    let authorized = false;
    for (const name in headers) {
      const value = headers[name];
      if (!PLAIN_VALUE.test(value)) throw new TypeError(`header ${name}: not a plain ASCII value`);
      if (name === 'authorization') authorized = true;
      text += `${name}: ${value}\r\n`;
    }
    if (!authorized && this.basicAuth !== undefined) text += `authorization: ${this.basicAuth}\r\n`;
    text += `content-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
    return new Promise((resolve) => {
      if (signal && signal.aborted) return resolve({ status: 0, statusText: '', failed: true });
      const exchange = new Exchange(text, signal, resolve);
      exchange.timer = setTimeout(() => this.settle(exchange, { status: 0, statusText: '', timedOut: true }), ms);
      if (signal) {
        exchange.onAbort = () => this.settle(exchange, { status: 0, statusText: '', failed: true });
        signal.addEventListener('abort', exchange.onAbort, { once: true });
      }
      this.start(exchange, false);
    });
  }

  private start(exchange: Exchange, fresh: boolean) {
    let connection: Connection | undefined;
    if (!fresh) {
      const now = Date.now();
      while (this.free.length > 0) {
        const candidate = this.free.pop()!;
        if (now - candidate.idleSince < this.idleMs && !candidate.closed) {
          connection = candidate;
          break;
        }
        candidate.socket.destroy();
      }
    }
    if (connection === undefined) {
      if (this.open >= this.maxConnections) {
        this.waiting.push(exchange);
        return;
      }
      connection = this.connect();
    }
    connection.exchange = exchange;
    exchange.connection = connection;
    connection.socket.write(exchange.text);
  }

  private connect(): Connection {
    const socket = connect({ host: this.host, port: this.port });
    socket.setNoDelay(true);
    const connection = new Connection(socket);
    this.open++;
    socket.on('data', (chunk: Buffer) => {
      try {
        this.read(connection, chunk);
      } catch {
        this.unreadable(connection); // never an exception out of a socket's listener
      }
    });
    socket.on('error', () => undefined); // 'close' follows
    socket.on('close', () => this.closed(connection));
    return connection;
  }

  private read(connection: Connection, chunk: Buffer) {
    const exchange = connection.exchange;
    if (exchange === undefined) {
      connection.socket.destroy(); // bytes nobody asked for
      return;
    }
    let head = connection.head;
    if (head === undefined) {
      connection.received += chunk.length;
      connection.chunks.push(chunk);
      const data = connection.chunks.length === 1 ? chunk : Buffer.concat(connection.chunks);
      const end = data.indexOf('\r\n\r\n');
      if (end < 0) {
        if (connection.received > MAX_HEAD_BYTES) this.unreadable(connection);
        else connection.chunks = [data];
        return;
      }
      head = headOf(data.toString('latin1', 0, end));
      if (head === undefined) return this.unreadable(connection);
      connection.head = head;
      chunk = data.subarray(end + 4);
      connection.chunks = [];
      connection.received = 0;
    }
    if (chunk.length > 0) {
      connection.chunks.push(chunk);
      connection.received += chunk.length;
    }
    if (connection.received < head.length) return;
    if (connection.received > head.length) return this.unreadable(connection); // bytes after the answer
    const chunks = connection.chunks;
    const body = chunks.length === 0 ? Buffer.alloc(0) : chunks.length === 1 ? chunks[0] : Buffer.concat(chunks);
    connection.head = undefined;
    connection.chunks = [];
    connection.received = 0;
    connection.exchange = undefined;
    exchange.connection = undefined;
    connection.served++;
    if (head.keepAlive) this.release(connection);
    else connection.socket.destroy();
    this.settle(exchange, {
      status: head.status,
      statusText: head.statusText,
      contentType: head.contentType,
      contentEncoding: head.contentEncoding,
      body,
    });
  }

  /** An answer this client does not read: its request is answered so, its connection closed. */
  private unreadable(connection: Connection) {
    const exchange = connection.exchange;
    connection.exchange = undefined;
    if (exchange !== undefined) {
      exchange.connection = undefined;
      this.settle(exchange, { status: 0, statusText: '', unreadable: true });
    }
    connection.socket.destroy();
  }

  private closed(connection: Connection) {
    if (!connection.closed) {
      connection.closed = true;
      this.open--;
      const at = this.free.indexOf(connection);
      if (at >= 0) this.free.splice(at, 1);
    }
    const exchange = connection.exchange;
    if (exchange !== undefined) {
      const nothingCame = connection.head === undefined && connection.received === 0;
      connection.exchange = undefined;
      exchange.connection = undefined;
      if (!exchange.settled) {
        if (nothingCame && connection.served > 0 && !exchange.retried) {
          exchange.retried = true; // a kept connection the subgraph had closed: once more
          this.start(exchange, true);
        } else {
          this.settle(exchange, { status: 0, statusText: '', failed: true });
        }
      }
    }
    this.startWaiting();
  }

  private release(connection: Connection) {
    const next = this.waiting.shift();
    if (next !== undefined) {
      connection.exchange = next;
      next.connection = connection;
      connection.socket.write(next.text);
      return;
    }
    connection.idleSince = Date.now();
    this.free.push(connection);
  }

  private startWaiting() {
    while (this.waiting.length > 0 && this.open < this.maxConnections) this.start(this.waiting.shift()!, true);
  }

  private settle(exchange: Exchange, answer: SubgraphAnswer) {
    if (exchange.settled) return;
    exchange.settled = true;
    clearTimeout(exchange.timer);
    if (exchange.onAbort !== undefined) exchange.signal!.removeEventListener('abort', exchange.onAbort);
    const connection = exchange.connection;
    if (connection !== undefined) {
      // Given up while asking (timed out, cancelled): that connection's answer is nobody's.
      exchange.connection = undefined;
      connection.exchange = undefined;
      connection.socket.destroy();
    } else {
      const at = this.waiting.indexOf(exchange);
      if (at >= 0) this.waiting.splice(at, 1);
    }
    exchange.resolve(answer);
  }

  private closeIdle(now: number) {
    for (let i = this.free.length - 1; i >= 0; i--) {
      const connection = this.free[i];
      if (now - connection.idleSince >= this.idleMs) {
        this.free.splice(i, 1);
        connection.socket.destroy();
      }
    }
  }
}

/** A status line and headers, or undefined when this client does not read such an answer. */
function headOf(text: string): Head | undefined {
  const lines = text.split('\r\n');
  const status = STATUS_LINE.exec(lines[0]);
  if (status === null) return undefined;
  const code = Number(status[2]);
  if (code < 200) return undefined; // 1xx: never asked for (no Expect)
  let length = code === 204 || code === 304 ? 0 : -1;
  let keepAlive = status[1] === '1';
  let contentType: string | undefined;
  let contentEncoding: string | undefined;
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i];
    const colon = line.indexOf(':');
    if (colon <= 0) return undefined;
    const name = line.slice(0, colon).toLowerCase();
    const value = line.slice(colon + 1).trim();
    if (name === 'content-length') {
      if (!DIGITS.test(value)) return undefined;
      const given = Number(value);
      if (length >= 0 && length !== given) return undefined;
      length = given;
    } else if (name === 'transfer-encoding') {
      return undefined; // chunked (and a length beside it) is not read here
    } else if (name === 'connection') {
      const tokens = value.toLowerCase();
      if (tokens.includes('close')) keepAlive = false;
      else if (tokens.includes('keep-alive')) keepAlive = true;
    } else if (name === 'content-type') {
      contentType = value;
    } else if (name === 'content-encoding') {
      contentEncoding = value;
    }
  }
  if (length < 0) return undefined; // a body until the connection closes: not read here
  return { status: code, statusText: status[3] === undefined ? '' : status[3], length, keepAlive, contentType, contentEncoding };
}
