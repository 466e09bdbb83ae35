/**
 * One way to make an HTTP call in tests, over two transports: a real loopback socket (node:http
 * with keep-alive, what a controller does) and an in-memory one that hands Node's own request
 * and response objects to `app.callback()` without a socket, several times faster, for fuzzing
 * thousands of call sequences. Both answer the same `HttpAnswer`, so a test can run on either.
 */
import {
  Agent,
  IncomingMessage,
  request,
  ServerResponse,
  type RequestListener,
} from 'node:http';
import { Socket } from 'node:net';
import { Writable } from 'node:stream';

export interface HttpCall {
  readonly method: string;
  /** Path and query, e.g. `/api/data?client=b&memo=r1.local`. */
  readonly path: string;
  readonly headers?: Readonly<Record<string, string>>;
  /** Sent with a Content-Length; absent: no body at all. */
  readonly body?: Uint8Array | string;
}

export interface HttpAnswer {
  readonly status: number;
  /** Header names in lower case. */
  readonly headers: Readonly<Record<string, string>>;
  readonly body: Buffer;
}

export interface Transport {
  call(call: HttpCall): Promise<HttpAnswer>;
  close(): void;
}

const bodyBytes = (body: Uint8Array | string): Buffer =>
  typeof body === 'string' ? Buffer.from(body, 'utf8') : Buffer.from(body);

/** Calls over a real socket to `baseUrl`, reusing connections like a polling controller. */
export function socketTransport(baseUrl: string): Transport {
  const agent = new Agent({ keepAlive: true, maxSockets: 4 });
  return {
    call: ({ method, path, headers = {}, body }) =>
      new Promise<HttpAnswer>((resolve, reject) => {
        const bytes = body === undefined ? undefined : bodyBytes(body);
        // Set explicitly: for DELETE and OPTIONS Node would send the body with no length at all.
        const sized = bytes === undefined ? headers : { ...headers, 'content-length': String(bytes.byteLength) };
        const req = request(`${baseUrl}${path}`, { method, headers: sized, agent }, (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (chunk: Buffer) => chunks.push(chunk));
          res.on('end', () => {
            const flat: Record<string, string> = {};
            for (const [name, value] of Object.entries(res.headers)) {
              if (value !== undefined) flat[name] = Array.isArray(value) ? value.join(', ') : value;
            }
            resolve({ status: res.statusCode ?? 0, headers: flat, body: Buffer.concat(chunks) });
          });
          res.on('error', reject);
        });
        req.on('error', reject);
        req.end(bytes);
      }),
    close: () => agent.destroy(),
  };
}

/** Collects what a ServerResponse writes, as its socket would. */
class Capture extends Writable {
  readonly chunks: Buffer[] = [];
  override _write(chunk: Buffer, _encoding: BufferEncoding, done: (error?: Error | null) => void): void {
    this.chunks.push(chunk);
    done();
  }
}

/** Splits a raw HTTP/1.1 response (Content-Length or chunked) into status, headers and body. */
export function parseResponse(raw: Buffer, method: string): HttpAnswer {
  const end = raw.indexOf('\r\n\r\n');
  // Nothing (or no complete head) came back: the server closed the connection without a word.
  if (end < 0) return { status: 0, headers: {}, body: raw };
  const [statusLine = '', ...lines] = raw.subarray(0, end).toString('latin1').split('\r\n');
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const colon = line.indexOf(':');
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    headers[name] = name in headers ? `${headers[name]}, ${value}` : value;
  }
  let rest = raw.subarray(end + 4);
  let body: Buffer;
  if (method === 'HEAD') {
    body = Buffer.alloc(0);
  } else if (headers['transfer-encoding'] === 'chunked') {
    const parts: Buffer[] = [];
    for (;;) {
      const lineEnd = rest.indexOf('\r\n');
      const size = Number.parseInt(rest.subarray(0, lineEnd).toString('latin1'), 16);
      if (!(size > 0)) break;
      parts.push(rest.subarray(lineEnd + 2, lineEnd + 2 + size));
      rest = rest.subarray(lineEnd + 2 + size + 2);
    }
    body = Buffer.concat(parts);
  } else {
    body = rest.subarray(0, Number(headers['content-length'] ?? rest.length));
  }
  return { status: Number(statusLine.split(' ')[1]), headers, body };
}

/**
 * Calls `listener` (an `app.callback()`) in memory: Node's IncomingMessage and ServerResponse,
 * no socket. What it does not exercise is the HTTP parser itself, which the socket runs cover.
 */
export function memoryTransport(listener: RequestListener): Transport {
  return {
    call: ({ method, path, headers = {}, body }) =>
      new Promise<HttpAnswer>((resolve, reject) => {
        const req = new IncomingMessage(new Socket());
        req.method = method;
        req.url = path;
        req.httpVersion = '1.1';
        req.httpVersionMajor = 1;
        req.httpVersionMinor = 1;
        const lowered: Record<string, string> = { host: 'memory' };
        for (const [name, value] of Object.entries(headers)) lowered[name.toLowerCase()] = value;
        const bytes = body === undefined ? null : bodyBytes(body);
        if (bytes !== null) lowered['content-length'] = String(bytes.byteLength);
        req.headers = lowered;
        req.rawHeaders = Object.entries(lowered).flat();
        if (bytes !== null && bytes.byteLength > 0) req.push(bytes);
        req.push(null);

        const res = new ServerResponse(req);
        const capture = new Capture();
        // ServerResponse writes to whatever it is given as its socket; a Writable is enough.
        res.assignSocket(capture as unknown as Socket);
        res.on('finish', () => {
          res.detachSocket(capture as unknown as Socket);
          resolve(parseResponse(Buffer.concat(capture.chunks), method));
        });
        res.on('error', reject);
        listener(req, res);
      }),
    close: () => {},
  };
}
