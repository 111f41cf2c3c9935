/** The S3 connector's ranged reads: GetObject with Range and IfMatch, resumed after a cut body for the same ETag. */
import { UfsError } from './errors.ts';
import { openPastDeadline, resumeCutReads } from './resumable-read.ts';
import { withRetry } from './retry.ts';
import type { S3Bucket } from './s3-bucket.ts';
import { S3AnswerError, versionChanged } from './s3-failures.ts';
import type { S3GetResponse } from './s3-get.ts';
import type { ByteRange } from './types.ts';

export interface ReadRequest {
  relative: string;
  range: ByteRange;
  version: string | undefined;
  signal: AbortSignal | undefined;
  into: Uint8Array | undefined;
}

export interface Opened {
  response: S3GetResponse;
  /** Detaches the caller's signal from the request. */
  unhook: () => void;
  version: string;
  /** Bytes to drop from the body's start: non-zero when the store ignored the range; NaN when it answered another one. */
  skipBytes: number;
}

/** GetObject from `from` to the end of the request's range; undefined past the end of the object. */
export async function openObject(
  bucket: S3Bucket,
  request: ReadRequest,
  from: number,
): Promise<Opened | undefined> {
  const what = `read "${request.relative}" at ${bucket.description}`;
  const last = request.range.offset + request.range.length - 1;
  return withRetry({
    policy: bucket.retry,
    what,
    signal: request.signal,
    logger: bucket.logger,
    classify: (error) => bucket.classify(error, what),
    attempt: async (phase) => {
      const { opened: response, release: unhook } = await openPastDeadline(phase, request.signal, (signal) =>
        bucket.getter.get({
          key: bucket.key(request.relative),
          first: from,
          last,
          ifMatch: request.version === undefined || request.version === '' ? undefined : request.version,
          signal,
          into: request.into?.subarray(from - request.range.offset),
        }),
      );
      const fail = (error: unknown): never => {
        unhook();
        response.destroy();
        throw error;
      };
      const { statusCode, headers } = response;
      if (statusCode !== 200 && statusCode !== 206) {
        // The error document names the S3 code (RFC: the S3 API's "Error responses").
        const text = await response.text(64 * 1024).catch(() => '');
        const code = /<Code>([^<]*)<\/Code>/.exec(text)?.[1];
        if (statusCode === 416 || code === 'InvalidRange') {
          unhook();
          return undefined;
        }
        return fail(new S3AnswerError(code, statusCode));
      }
      const version = headers.etag ?? '';
      if (request.version !== undefined && version !== request.version) return fail(versionChanged(what));
      // A store that ignores Range answers 200 with the whole object: skip to `from` ourselves.
      const start = /^bytes (\d+)-/.exec(headers['content-range'] ?? '')?.[1];
      const skipBytes = start === undefined ? from : Number(start) === from ? 0 : NaN;
      return { response, version, skipBytes, unhook };
    },
  });
}

/** The object's bytes in the request's range, resumed where the network cut them, for the same ETag. */
export function objectStream(
  bucket: S3Bucket,
  request: ReadRequest,
  first: Opened,
): AsyncIterable<Uint8Array> {
  const what = `read "${request.relative}" at ${bucket.description}`;
  const end = request.range.offset + request.range.length;
  const pinned = { ...request, version: first.version };
  return resumeCutReads<Opened | undefined>({
    read: {
      what,
      path: request.relative,
      signal: request.signal,
      retry: bucket.retry,
      logger: bucket.logger,
      classify: (error) => bucket.classify(error, what),
    },
    first,
    start: request.range.offset,
    chunksOf: (opened, position) => objectChunks(opened, position, end, what),
    reopen: (position) => openObject(bucket, pinned, position),
    close: (opened) => {
      opened?.response.destroy();
      opened?.unhook();
    },
  });
}

/**
 * The bytes of one opened GetObject from `position` to `end`: the head of a whole object that the
 * store sent for a range is dropped, and nothing past `end` is given. Nothing for undefined (the
 * range starts past the end of the object).
 * @throws {UfsError} ERR_UFS_REMOTE when the store answered another range
 */
async function* objectChunks(
  opened: Opened | undefined,
  position: number,
  end: number,
  what: string,
): AsyncIterable<Uint8Array> {
  if (opened === undefined) return;
  let skip = opened.skipBytes;
  if (Number.isNaN(skip))
    throw new UfsError('ERR_UFS_REMOTE', `Cannot ${what}: the store answered another range`);
  let at = position;
  for await (const raw of opened.response.body) {
    let chunk: Uint8Array = raw;
    if (skip > 0) {
      const dropped = Math.min(skip, chunk.length);
      skip -= dropped;
      chunk = chunk.subarray(dropped);
    }
    if (chunk.length > end - at) chunk = chunk.subarray(0, end - at);
    if (chunk.length === 0) {
      if (at >= end) return;
      continue;
    }
    at += chunk.length;
    yield chunk;
    if (at >= end) return;
  }
  // The transports themselves fail a body shorter than its Content-Length.
}
