import { UfsError } from './errors.ts';

/** The error every connector throws when its caller's AbortSignal fired. */
export function abortedError(signal: AbortSignal, what: string): UfsError {
  return new UfsError('ERR_UFS_ABORTED', `Cannot finish ${what} as it was aborted`, {
    cause: signal.reason,
  });
}

export function throwIfAborted(signal: AbortSignal | undefined, what: string): void {
  if (signal?.aborted === true) throw abortedError(signal, what);
}
