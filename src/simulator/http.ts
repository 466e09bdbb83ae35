/**
 * The controller's HTTP calls: node:http with keep-alive connections, one pool per run. The
 * controller polls every client all the time, so a call must cost little: node:http takes about
 * half the CPU time of fetch for a small request, and needs no AbortSignal per call.
 *
 * A response body is read into one buffer of its declared length (a 64 MB model is held once,
 * not as chunks plus their concatenation), or handed over as a stream (`open`) to be relayed as
 * it arrives (`upload`).
 */
import {
  Agent as HttpAgent,
  request as httpRequest,
  type ClientRequest,
  type IncomingMessage,
  type OutgoingHttpHeaders,
} from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';

export interface Answer {
  readonly status: number;
  readonly body: Buffer;
}

export interface CallOptions {
  readonly method?: 'GET' | 'POST';
  readonly body?: Uint8Array;
  readonly contentType?: string;
  readonly timeoutMs: number;
}

/** A response whose body the caller reads. */
export interface Opened {
  readonly status: number;
  /** The declared Content-Length; null when the body is chunked. */
  readonly length: number | null;
  readonly body: IncomingMessage;
}

/** A POST whose body the caller writes to `request` and ends. */
export interface Upload {
  readonly request: ClientRequest;
  readonly answer: Promise<Answer>;
}

export interface HttpClient {
  /** Rejects with an Error saying why when no answer came (refused, reset, timed out). */
  call(url: string, options: CallOptions): Promise<Answer>;
  /** A GET whose body is read by the caller; the time limit runs until the body has been read. */
  open(url: string, timeoutMs: number): Promise<Opened>;
  /** A POST of `length` bytes of application/octet-stream that the caller writes, on a new connection. */
  upload(url: string, length: number, timeoutMs: number): Upload;
  /** Closes the kept-alive connections. */
  close(): void;
}

/** Reads a whole body, into one buffer of its declared length when it has one. */
export function readAll(response: IncomingMessage): Promise<Buffer> {
  return new Promise<Buffer>((resolve, reject) => {
    const declared = Number(response.headers['content-length']);
    const whole = Number.isSafeInteger(declared) && declared >= 0 ? Buffer.allocUnsafeSlow(declared) : null;
    const chunks: Buffer[] = [];
    let received = 0;
    response.on('data', (chunk: Buffer) => {
      if (whole !== null && received + chunk.byteLength <= whole.byteLength) chunk.copy(whole, received);
      else chunks.push(chunk);
      received += chunk.byteLength;
    });
    response.once('end', () => {
      if (whole !== null && received === whole.byteLength) resolve(whole);
      else if (whole !== null) reject(new Error(`the body has ${received} bytes, not the ${whole.byteLength} it declared`));
      else resolve(Buffer.concat(chunks, received));
    });
    response.once('error', reject);
    response.once('aborted', () => reject(new Error('the response was cut short')));
  });
}

export function createHttpClient(): HttpClient {
  const agents = { http: new HttpAgent({ keepAlive: true }), https: new HttpsAgent({ keepAlive: true }) };

  /**
   * One exchange: the request, and its response (which fails on any error or the time limit).
   * `pooled: false` opens a connection of its own, for an exchange that cannot be retried.
   */
  const start = (url: string, method: 'GET' | 'POST', headers: OutgoingHttpHeaders, timeoutMs: number, pooled = true) => {
    const secure = url.startsWith('https:');
    const agent = pooled ? (secure ? agents.https : agents.http) : false;
    const request = (secure ? httpsRequest : httpRequest)(url, { method, headers, agent });
    const timer = setTimeout(() => request.destroy(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
    const response = new Promise<IncomingMessage>((resolve, reject) => {
      request.on('error', (error) => {
        clearTimeout(timer);
        reject(error);
      });
      request.once('response', (incoming: IncomingMessage) => {
        incoming.once('close', () => clearTimeout(timer));
        resolve(incoming);
      });
    });
    return { request, response };
  };

  const answerOf = async (response: Promise<IncomingMessage>): Promise<Answer> => {
    const incoming = await response;
    return { status: incoming.statusCode ?? 0, body: await readAll(incoming) };
  };

  return {
    call: (url, options) => {
      const headers: OutgoingHttpHeaders = {};
      if (options.body !== undefined) {
        headers['content-type'] = options.contentType ?? 'application/octet-stream';
        headers['content-length'] = options.body.byteLength;
      }
      const { request, response } = start(url, options.method ?? 'GET', headers, options.timeoutMs);
      request.end(options.body);
      return answerOf(response);
    },
    open: async (url, timeoutMs) => {
      const { request, response } = start(url, 'GET', {}, timeoutMs);
      request.end();
      const body = await response;
      const declared = Number(body.headers['content-length']);
      return { status: body.statusCode ?? 0, length: Number.isSafeInteger(declared) ? declared : null, body };
    },
    upload: (url, length, timeoutMs) => {
      const headers = { 'content-type': 'application/octet-stream', 'content-length': length };
      // A streamed body cannot be sent again, so it never goes over a kept-alive connection that
      // the receiver may be closing just then (the one failure a retry would otherwise cover).
      const { request, response } = start(url, 'POST', headers, timeoutMs, false);
      const answer = answerOf(response);
      // The caller may still be writing when the receiver fails: it learns of it when it awaits.
      answer.catch(() => {});
      return { request, answer };
    },
    close: () => {
      agents.http.destroy();
      agents.https.destroy();
    },
  };
}
