/**
 * What the web and S3 connectors share about a read whose body outlives the attempt that opened
 * it: the request's signal, and going on after the network cut the body.
 */
import { throwIfAborted, type Logger } from '../lib/index.ts';
import { abortedError } from './abort.ts';
import { backoff, type ClassifiedFailure, type RetryPolicy } from './retry.ts';

/**
 * Opens a request whose body lives past the deadline of its first byte: the request follows the
 * caller's signal throughout, and the attempt's deadline (`phase`, from withRetry) only until
 * `open` resolves. `release` lets go of the caller's signal once the body is done with; on failure
 * it is let go here.
 */
export async function openPastDeadline<T>(
  phase: AbortSignal,
  caller: AbortSignal | undefined,
  open: (signal: AbortSignal) => Promise<T>,
): Promise<{ opened: T; release: () => void }> {
  const controller = new AbortController();
  const onPhase = (): void => {
    controller.abort(phase.reason);
  };
  const onCaller = (): void => {
    controller.abort(caller?.reason);
  };
  phase.addEventListener('abort', onPhase, { once: true });
  caller?.addEventListener('abort', onCaller, { once: true });
  const release = (): void => {
    caller?.removeEventListener('abort', onCaller);
  };
  try {
    return { opened: await open(controller.signal), release };
  } catch (error) {
    release();
    throw error;
  } finally {
    phase.removeEventListener('abort', onPhase);
  }
}

/** A read in progress, for deciding whether and how it goes on after a failure. */
export interface CutRead {
  /** For messages: `read "a/b" at s3://bucket/prefix`. */
  what: string;
  /** The connector path, for the log. */
  path: string;
  signal: AbortSignal | undefined;
  retry: RetryPolicy;
  logger: Logger;
  classify: (error: unknown) => ClassifiedFailure;
}

/**
 * After attempt `attempt` of a read failed at `position`: throws for good (ERR_UFS_ABORTED when the
 * caller aborted, else the classified error when it is not retryable or the attempts are used up),
 * or logs `message` and waits the backoff, after which the caller opens the read again.
 */
export async function recoverCutRead(
  read: CutRead,
  error: unknown,
  attempt: number,
  position: number,
  message: string,
): Promise<void> {
  throwIfAborted(read.signal, abortedError(read.what));
  const failure = read.classify(error);
  if (!failure.retryable || attempt >= read.retry.maxAttempts) throw failure.error;
  read.logger.warn({ path: read.path, position, err: failure.error.message }, message);
  await backoff(read.retry, attempt, read.signal, read.what);
}

/**
 * The bytes of a ranged read from `start`, resumed where the network cut it: `chunksOf` gives an
 * opened answer's bytes (and throws when it ends short), `reopen` opens the rest from a position
 * (pinned to the version first seen: that is the connector's), `close` drops an answer.
 */
export async function* resumeCutReads<Opened>(options: {
  read: CutRead;
  first: Opened;
  start: number;
  chunksOf: (opened: Opened, position: number) => AsyncIterable<Uint8Array>;
  reopen: (position: number) => Promise<Opened>;
  close: (opened: Opened) => void;
}): AsyncIterable<Uint8Array> {
  let position = options.start;
  let current = options.first;
  for (let attempt = 1; ; attempt++) {
    let cut: unknown;
    try {
      for await (const chunk of options.chunksOf(current, position)) {
        position += chunk.length;
        yield chunk;
      }
      return;
    } catch (error) {
      cut = error;
    } finally {
      // Once per answer: when it ends, when the reader stops early, and before a backoff.
      options.close(current);
    }
    await recoverCutRead(options.read, cut, attempt, position, 'resuming a cut read');
    current = await options.reopen(position);
  }
}
