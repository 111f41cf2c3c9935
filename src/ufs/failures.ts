import { toError } from '../lib/index.ts';
import { UfsError, type UfsErrorCode } from './errors.ts';
import type { ClassifiedFailure } from './retry.ts';

/** UfsErrors that another attempt may cure (a 5xx or 429 answer), as connectors raise them. */
const transient = new WeakSet<UfsError>();

export function transientError(code: UfsErrorCode, message: string, options?: ErrorOptions): UfsError {
  const error = new UfsError(code, message, options);
  transient.add(error);
  return error;
}

/** Error codes of Node sockets, DNS and undici, sorted by what they mean for a retry. */
const NETWORK_CODES: Readonly<Record<string, { code: UfsErrorCode; retryable: boolean; text: string }>> = {
  // A refused connection and an unknown name are definite answers: retrying only delays the error.
  ECONNREFUSED: { code: 'ERR_UFS_UNREACHABLE', retryable: false, text: 'the connection was refused' },
  ENOTFOUND: { code: 'ERR_UFS_UNREACHABLE', retryable: false, text: 'the host name does not resolve' },
  EAI_NONAME: { code: 'ERR_UFS_UNREACHABLE', retryable: false, text: 'the host name does not resolve' },
  EAI_AGAIN: { code: 'ERR_UFS_UNREACHABLE', retryable: true, text: 'name resolution failed for now' },
  EHOSTUNREACH: { code: 'ERR_UFS_UNREACHABLE', retryable: true, text: 'the host is unreachable' },
  ENETUNREACH: { code: 'ERR_UFS_UNREACHABLE', retryable: true, text: 'the network is unreachable' },
  ECONNRESET: { code: 'ERR_UFS_UNREACHABLE', retryable: true, text: 'the connection was reset' },
  ECONNABORTED: { code: 'ERR_UFS_UNREACHABLE', retryable: true, text: 'the connection was aborted' },
  EPIPE: { code: 'ERR_UFS_UNREACHABLE', retryable: true, text: 'the connection was closed' },
  UND_ERR_SOCKET: { code: 'ERR_UFS_UNREACHABLE', retryable: true, text: 'the connection failed' },
  UND_ERR_CLOSED: { code: 'ERR_UFS_UNREACHABLE', retryable: true, text: 'the connection was closed' },
  UND_ERR_RES_CONTENT_LENGTH_MISMATCH: {
    code: 'ERR_UFS_UNREACHABLE',
    retryable: true,
    text: 'the response ended early',
  },
  ERR_STREAM_PREMATURE_CLOSE: {
    code: 'ERR_UFS_UNREACHABLE',
    retryable: true,
    text: 'the response ended early',
  },
  ETIMEDOUT: { code: 'ERR_UFS_TIMEOUT', retryable: true, text: 'the connection timed out' },
  UND_ERR_CONNECT_TIMEOUT: { code: 'ERR_UFS_TIMEOUT', retryable: true, text: 'connecting timed out' },
  UND_ERR_HEADERS_TIMEOUT: { code: 'ERR_UFS_TIMEOUT', retryable: true, text: 'no response headers in time' },
  UND_ERR_BODY_TIMEOUT: { code: 'ERR_UFS_TIMEOUT', retryable: true, text: 'the response body stalled' },
  TimeoutError: { code: 'ERR_UFS_TIMEOUT', retryable: true, text: 'the request timed out' },
  // Http1Client (src/http).
  ERR_HTTP1_CONNECT_TIMEOUT: { code: 'ERR_UFS_TIMEOUT', retryable: true, text: 'connecting timed out' },
  ERR_HTTP1_HEADERS_TIMEOUT: {
    code: 'ERR_UFS_TIMEOUT',
    retryable: true,
    text: 'no response headers in time',
  },
  ERR_HTTP1_BODY_TIMEOUT: { code: 'ERR_UFS_TIMEOUT', retryable: true, text: 'the response body stalled' },
  ERR_HTTP1_EARLY_END: { code: 'ERR_UFS_UNREACHABLE', retryable: true, text: 'the response ended early' },
  ERR_HTTP1_BAD_RESPONSE: {
    code: 'ERR_UFS_REMOTE',
    retryable: false,
    text: 'the answer is not valid HTTP/1.1',
  },
};

/** The first Node/undici error code on `error` or its causes (AggregateErrors of happy-eyeballs too). */
export function networkCodeOf(error: unknown): string | undefined {
  const seen = new Set<unknown>();
  const queue: unknown[] = [error];
  while (queue.length > 0) {
    const current = queue.shift();
    if (current === null || typeof current !== 'object' || seen.has(current)) continue;
    seen.add(current);
    const { code, name, cause, errors } = current as {
      code?: unknown;
      name?: unknown;
      cause?: unknown;
      errors?: unknown;
    };
    if (typeof code === 'string' && code in NETWORK_CODES) return code;
    if (typeof name === 'string' && name in NETWORK_CODES) return name;
    queue.push(cause);
    if (Array.isArray(errors)) queue.push(...(errors as unknown[]));
  }
  return undefined;
}

/**
 * Classifies an error of a network call. `where` names the operation and origin (no secrets);
 * `scrub` removes secret values from any remote text that ends up in the message.
 */
export function classifyNetworkError(
  error: unknown,
  where: string,
  scrub: (text: string) => string,
): ClassifiedFailure {
  if (error instanceof UfsError) return { error, retryable: transient.has(error) };
  const networkCode = networkCodeOf(error);
  const known = networkCode === undefined ? undefined : NETWORK_CODES[networkCode];
  if (known !== undefined) {
    return {
      error: new UfsError(known.code, `Cannot ${where}: ${known.text} (${networkCode ?? ''})`, {
        cause: scrubbedCause(error, scrub),
      }),
      retryable: known.retryable,
    };
  }
  return {
    error: new UfsError('ERR_UFS_REMOTE', `Cannot ${where}: ${scrub(toError(error).message)}`, {
      cause: scrubbedCause(error, scrub),
    }),
    retryable: false,
  };
}

/**
 * A cause safe to keep: remote SDK errors may quote request details, so their message is scrubbed
 * into a plain Error that keeps only name, code and message.
 */
export function scrubbedCause(error: unknown, scrub: (text: string) => string): Error {
  const original = toError(error);
  const copy = new Error(scrub(original.message));
  copy.name = original.name;
  const code = (original as { code?: unknown }).code;
  if (typeof code === 'string') Object.assign(copy, { code });
  copy.stack = scrub(original.stack ?? '');
  return copy;
}
