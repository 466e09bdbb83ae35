/**
 * Reads the raw body of POST /api/data (any content type) with a size limit.
 *
 * A model's weights can be hundreds of MB, so the body is held once: with a Content-Length the
 * buffer is allocated at that size up front and each chunk is copied in as it arrives, instead of
 * keeping the chunks and concatenating them at the end (which holds the body twice). The buffer
 * has its own memory (offset 0), so the vectors in a binary message can be read in place.
 */
import type { IncomingMessage } from 'node:http';
import { badRequest, HttpProblem } from './errors.ts';

/** Below this, Node's shared pool is cheaper than a buffer of its own. */
const OWN_BUFFER_FROM = 64 * 1024;

function tooLarge(limit: number): HttpProblem {
  return new HttpProblem('payload_too_large', `the body is larger than the limit of ${limit} bytes`);
}

/**
 * `declared` is the Content-Length (null when the body is chunked). Over the limit, it fails
 * before reading anything (a declared length) or as soon as the limit is passed, and leaves the
 * rest of the stream unread.
 */
export function readBody(request: IncomingMessage, limit: number, declared: number | null): Promise<Buffer> {
  if (declared !== null && declared > limit) return Promise.reject(tooLarge(limit));
  return new Promise<Buffer>((resolve, reject) => {
    const whole = declared === null ? null : declared >= OWN_BUFFER_FROM ? Buffer.allocUnsafeSlow(declared) : Buffer.allocUnsafe(declared);
    const chunks: Buffer[] = [];
    let received = 0;
    let settled = false;

    const settle = (error: HttpProblem | null, body?: Buffer) => {
      if (settled) return;
      settled = true;
      request.off('data', onData);
      request.off('end', onEnd);
      request.off('error', onError);
      request.off('aborted', onAborted);
      request.off('close', onClose);
      if (error === null && body !== undefined) {
        resolve(body);
        return;
      }
      request.unpipe();
      request.pause();
      reject(error);
    };
    const mismatch = () => badRequest('the body could not be read (its length does not match Content-Length)');

    function onData(chunk: Buffer) {
      const end = received + chunk.byteLength;
      if (end > limit) return settle(tooLarge(limit));
      if (whole === null) chunks.push(chunk);
      else if (end > whole.byteLength) return settle(mismatch());
      else chunk.copy(whole, received);
      received = end;
    }
    function onEnd() {
      if (whole === null) return settle(null, Buffer.concat(chunks, received));
      if (received !== whole.byteLength) return settle(mismatch());
      settle(null, whole);
    }
    function onError() {
      settle(badRequest('the body could not be read (its length does not match Content-Length)'));
    }
    function onAborted() {
      settle(badRequest('the request was aborted before its body was complete'));
    }
    // A connection closed before the end of the body: nobody is left to answer, but the handler
    // must not wait forever.
    function onClose() {
      settle(badRequest('the request was aborted before its body was complete'));
    }

    request.on('data', onData);
    request.on('end', onEnd);
    request.on('error', onError);
    request.on('aborted', onAborted);
    request.on('close', onClose);
  });
}
