import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from '../lib/index.ts';
import { abortedError } from './abort.ts';
import { UfsError } from './errors.ts';

/** How a remote operation is retried. Every field is a bound, so that no operation hangs. */
export interface RetryPolicy {
  /** Attempts in all, the first included. Default 5. */
  maxAttempts: number;
  /** Backoff before the second attempt; doubles with each further one. Default 100 ms. */
  baseDelayMs: number;
  /** Ceiling of one backoff. Default 5 s. */
  maxDelayMs: number;
  /**
   * Time allowed to one operation with all its attempts and backoffs: a stat, one page of a listing,
   * or a read until its first byte (a read's body is bounded by `bodyIdleTimeoutMs` instead, since a
   * large range may rightly take long). Default 60 s.
   */
  deadlineMs: number;
}

export const DEFAULT_RETRY_POLICY: Readonly<RetryPolicy> = Object.freeze({
  maxAttempts: 5,
  baseDelayMs: 100,
  maxDelayMs: 5000,
  deadlineMs: 60_000,
});

/** A failure seen by one attempt, sorted by whether another attempt may succeed. */
export interface ClassifiedFailure {
  error: UfsError;
  retryable: boolean;
}

export interface RetryOptions<T> {
  policy: RetryPolicy;
  /** For messages: `stat of "a/b" at s3://bucket/prefix`. */
  what: string;
  signal?: AbortSignal | undefined;
  logger: Logger;
  /** One attempt. `signal` fires on the caller's abort and on the deadline. */
  attempt: (signal: AbortSignal, attemptNumber: number) => Promise<T>;
  /** Turns whatever an attempt threw into a UfsError and says whether to try again. */
  classify: (error: unknown) => ClassifiedFailure;
}

/**
 * Runs `attempt` until it succeeds, fails for good, runs out of attempts or passes the deadline.
 * Backoff is exponential with "equal jitter" (half fixed, half random), which spreads the retries of
 * many workers hitting one origin while keeping a floor under each delay.
 * @throws {UfsError} the last attempt's error; ERR_UFS_TIMEOUT past the deadline (the last error as
 *   cause); ERR_UFS_ABORTED when the caller's signal fired
 */
export async function withRetry<T>(options: RetryOptions<T>): Promise<T> {
  const { policy, what, signal } = options;
  const deadline = AbortSignal.timeout(policy.deadlineMs);
  const combined = signal === undefined ? deadline : AbortSignal.any([signal, deadline]);
  let last: UfsError | undefined;
  for (let attemptNumber = 1; ; attemptNumber++) {
    try {
      return await options.attempt(combined, attemptNumber);
    } catch (error) {
      if (combined.aborted) throw stopped(signal, what, policy, last ?? asUfsError(error, options));
      const failure = options.classify(error);
      last = failure.error;
      if (!failure.retryable || attemptNumber >= policy.maxAttempts) throw failure.error;
      const delayMs = backoffMs(policy, attemptNumber);
      options.logger.warn(
        { attempt: attemptNumber, delayMs, code: failure.error.code, err: failure.error.message },
        `retrying ${what}`,
      );
      try {
        await sleep(delayMs, undefined, { signal: combined });
      } catch {
        throw stopped(signal, what, policy, last);
      }
    }
  }
}

/** Delay before attempt `attemptNumber + 1`. */
export function backoffMs(policy: RetryPolicy, attemptNumber: number): number {
  const cap = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** (attemptNumber - 1));
  return Math.round(cap / 2 + (Math.random() * cap) / 2);
}

/**
 * Waits the backoff before attempt `attemptNumber + 1` of a resumed stream.
 * @throws {UfsError} ERR_UFS_ABORTED when `signal` fires meanwhile
 */
export async function backoff(
  policy: RetryPolicy,
  attemptNumber: number,
  signal: AbortSignal | undefined,
  what: string,
): Promise<void> {
  try {
    await sleep(backoffMs(policy, attemptNumber), undefined, signal === undefined ? {} : { signal });
  } catch (error) {
    throw new UfsError('ERR_UFS_ABORTED', `Cannot finish ${what} as it was aborted`, { cause: error });
  }
}

function asUfsError<T>(error: unknown, options: RetryOptions<T>): UfsError {
  return options.classify(error).error;
}

function stopped(
  signal: AbortSignal | undefined,
  what: string,
  policy: RetryPolicy,
  last: UfsError | undefined,
): UfsError {
  if (signal?.aborted === true) {
    return abortedError(what)(signal);
  }
  const detail = last === undefined ? '' : `; last error: ${last.message}`;
  return new UfsError('ERR_UFS_TIMEOUT', `Cannot finish ${what} within ${policy.deadlineMs} ms${detail}`, {
    cause: last,
  });
}

/**
 * Reads a retry policy from mount options (`tide.ufs.maxAttempts`, `tide.ufs.retryBaseDelayMs`,
 * `tide.ufs.retryMaxDelayMs`, `tide.ufs.deadlineMs`) over `base`.
 * @throws {UfsError} ERR_UFS_BAD_CONFIG for a value that is not a positive integer
 */
export function retryPolicyFrom(
  options: Readonly<Record<string, string>>,
  base: Readonly<RetryPolicy>,
): RetryPolicy {
  return {
    maxAttempts: positiveInteger(options, 'tide.ufs.maxAttempts') ?? base.maxAttempts,
    baseDelayMs: positiveInteger(options, 'tide.ufs.retryBaseDelayMs') ?? base.baseDelayMs,
    maxDelayMs: positiveInteger(options, 'tide.ufs.retryMaxDelayMs') ?? base.maxDelayMs,
    deadlineMs: positiveInteger(options, 'tide.ufs.deadlineMs') ?? base.deadlineMs,
  };
}

export function positiveInteger(options: Readonly<Record<string, string>>, name: string): number | undefined {
  const text = options[name];
  if (text === undefined) return undefined;
  const value = Number(text);
  if (!Number.isSafeInteger(value) || value <= 0) {
    throw new UfsError(
      'ERR_UFS_BAD_CONFIG',
      `Cannot use option ${name}="${text}": it must be a positive integer`,
    );
  }
  return value;
}
