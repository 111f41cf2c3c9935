import { TideError } from '../lib/index.ts';

export type Http1ErrorCode =
  /** The TCP connect took longer than `connectTimeoutMs`. */
  | 'ERR_HTTP1_CONNECT_TIMEOUT'
  /** No response head within `headersTimeoutMs` of sending the request. */
  | 'ERR_HTTP1_HEADERS_TIMEOUT'
  /** The body paused longer than `bodyIdleTimeoutMs`. */
  | 'ERR_HTTP1_BODY_TIMEOUT'
  /** The server closed the connection before the answer was complete. */
  | 'ERR_HTTP1_EARLY_END'
  /** The answer is not valid HTTP/1.1, or does not fit the caller's buffer. */
  | 'ERR_HTTP1_BAD_RESPONSE'
  /** The client was closed, or the body destroyed, before the answer was read. */
  | 'ERR_HTTP1_CLOSED';

/**
 * A transport failure of Http1Client; `code` is what the connectors' classifyNetworkError sorts.
 * Node's own socket errors (ECONNRESET, ECONNREFUSED…) come through as they are.
 */
export class Http1Error extends TideError<Http1ErrorCode> {}

/**
 * A request sent on a kept-alive connection that the server had closed before any byte of an
 * answer. The pool sends it once more on a new connection; it never reaches a caller.
 */
export class StaleConnectionError extends TideError<'ERR_HTTP1_STALE_CONNECTION'> {
  override readonly cause: Error;
  constructor(cause: Error) {
    super('ERR_HTTP1_STALE_CONNECTION', 'the kept-alive connection was closed by the server', { cause });
    this.cause = cause;
  }
}

export function isEarlyEnd(error: Error): boolean {
  return error instanceof Http1Error && error.code === 'ERR_HTTP1_EARLY_END';
}
