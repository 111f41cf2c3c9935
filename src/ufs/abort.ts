import { UfsError } from './errors.ts';

/**
 * The error every connector throws when its caller's AbortSignal fired, in the shape lib's
 * throwIfAborted takes: `throwIfAborted(signal, abortedError('read of "a/b" at …'))`.
 */
export function abortedError(what: string): (signal: AbortSignal) => UfsError {
  return (signal) =>
    new UfsError('ERR_UFS_ABORTED', `Cannot finish ${what} as it was aborted`, { cause: signal.reason });
}
