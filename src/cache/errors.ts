import { TideError } from '../lib/index.ts';

export type CacheErrorCode =
  /** A tier, worker or client configuration that cannot work (bad quota, watermarks, paths). */
  | 'ERR_CACHE_BAD_CONFIG'
  /** The file changed at the origin since the reader learned its version. */
  | 'ERR_CACHE_VERSION_CHANGED'
  /** Nothing is at the path in the dataset. */
  | 'ERR_CACHE_NOT_FOUND'
  /** A worker refused the request: wrong token or another dataset. */
  | 'ERR_CACHE_FORBIDDEN'
  /** Neither a worker nor the origin could serve the bytes. */
  | 'ERR_CACHE_UNAVAILABLE'
  /** The worker answered something the client does not understand. */
  | 'ERR_CACHE_PROTOCOL'
  /** A read past the end of the file, or a malformed request. */
  | 'ERR_CACHE_BAD_REQUEST'
  | 'ERR_CACHE_ABORTED';

/** A failure of the cache engine: block store, worker or client. */
export class CacheError extends TideError<CacheErrorCode> {}

/** The error for an aborted cache operation, carrying the signal's reason. */
export function cacheAborted(signal: AbortSignal, what: string): CacheError {
  return new CacheError('ERR_CACHE_ABORTED', `Cannot finish ${what} as it was aborted`, {
    cause: signal.reason,
  });
}

export function throwIfAborted(signal: AbortSignal | undefined, what: string): void {
  if (signal?.aborted === true) throw cacheAborted(signal, what);
}
