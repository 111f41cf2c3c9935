/**
 * `promise`, or a rejection as soon as `signal` aborts, whichever comes first: the caller stops
 * waiting while the work itself goes on (or is stopped by whoever owns it). `onAbort` runs when the
 * signal wins and gives the rejection reason; by default the signal's own. The listener is removed
 * either way, so a long-lived signal does not collect one per call.
 */
export function raceAbort<T>(
  promise: Promise<T>,
  signal: AbortSignal | undefined,
  onAbort: (signal: AbortSignal) => unknown = (aborted) => aborted.reason,
): Promise<T> {
  if (signal === undefined) return promise;
  if (signal.aborted) return Promise.reject(toRejection(onAbort(signal)));
  return new Promise<T>((resolve, reject) => {
    const listener = (): void => {
      reject(toRejection(onAbort(signal)));
    };
    signal.addEventListener('abort', listener, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener('abort', listener);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener('abort', listener);
        reject(toRejection(error));
      },
    );
  });
}

/**
 * Throws when `signal` has aborted: the error `abortedError` makes of it (a component's coded
 * `ERR_*_ABORTED`), by default the signal's reason (made an Error if it is none).
 */
export function throwIfAborted(
  signal: AbortSignal | undefined,
  abortedError: (signal: AbortSignal) => Error = (aborted) => toRejection(aborted.reason),
): void {
  if (signal?.aborted === true) throw abortedError(signal);
}

function toRejection(reason: unknown): Error {
  return reason instanceof Error ? reason : new Error(String(reason));
}
