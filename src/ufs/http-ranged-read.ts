/**
 * The web connector's ranged reads: `GET` with `Range` (RFC 9110 §14) and a precondition on the
 * version asked for, so that a file replaced between two block reads answers 412 →
 * ERR_UFS_VERSION_CHANGED; every response's own validators are compared as well, for servers that
 * ignore conditions. A body cut mid-way is resumed from the byte where it stopped, pinned to the
 * version.
 */
import { UfsError } from './errors.ts';
import { transientError } from './failures.ts';
import { discard, onSettled, type HttpOrigin, type Response } from './http-origin.ts';
import { parseContentRange, sizeOf } from './http-stat.ts';
import { conditionalHeaders, versionChanged, versionOf } from './http-version.ts';
import { openPastDeadline, resumeCutReads } from './resumable-read.ts';
import type { SequentialSource } from './sequential-readers.ts';
import type { ByteRange } from './types.ts';

/** A read as the connector got it, the file's URL resolved. */
export interface ReadRequest {
  url: URL;
  relative: string;
  range: ByteRange;
  version: string | undefined;
  signal: AbortSignal | undefined;
  into: Uint8Array | undefined;
}

export /** A GET of a range, opened: either the range itself (206) or the whole file (200). */
type Opened =
  | { kind: 'empty' }
  | { kind: 'ranged'; response: Response; version: string; start: number; end: number }
  | { kind: 'whole'; source: SequentialSource; start: number };

/** Opens `GET` for the rest of the request's range from `from`, with retries. */
export async function openRange(origin: HttpOrigin, request: ReadRequest, from: number): Promise<Opened> {
  const what = `read "${request.relative}" at ${origin.description}`;
  return origin.retrying(what, request.signal, (phase) => openRangeOnce(origin, request, from, phase));
}

async function openRangeOnce(
  origin: HttpOrigin,
  request: ReadRequest,
  from: number,
  phase: AbortSignal,
): Promise<Opened> {
  const what = `read "${request.relative}" at ${origin.description}`;
  const last = request.range.offset + request.range.length - 1;
  const { opened, release } = await openPastDeadline(phase, request.signal, (signal) =>
    origin.request({
      method: 'GET',
      url: request.url,
      signal,
      headers: { range: `bytes=${from}-${last}`, ...conditionalHeaders(request.version) },
      into: request.into?.subarray(from - request.range.offset),
    }),
  );
  const response = { ...opened, body: onSettled(opened.body, release) };
  const fail = async (error: UfsError): Promise<never> => {
    await discard(response);
    throw error;
  };
  switch (response.statusCode) {
    case 206: {
      const contentRange = parseContentRange(response.headers['content-range']);
      if (contentRange?.start !== from) {
        return fail(new UfsError('ERR_UFS_REMOTE', `Cannot ${what}: the server answered another range`));
      }
      const version = versionOf(response.headers, contentRange.total);
      if (request.version !== undefined && version !== request.version) return fail(versionChanged(what));
      return { kind: 'ranged', response, version, start: contentRange.start, end: contentRange.end };
    }
    case 200: {
      const version = versionOf(response.headers, sizeOf(response));
      if (request.version !== undefined && version !== request.version) return fail(versionChanged(what));
      return {
        kind: 'whole',
        start: 0,
        source: {
          key: request.url.href,
          version,
          body: response.body,
          destroy: () => {
            response.body.destroy();
          },
        },
      };
    }
    case 416:
      await discard(response);
      return { kind: 'empty' };
    case 412:
      return fail(versionChanged(what));
    default:
      return fail(origin.statusError(response, what));
  }
}

/** A 206 body; cut short by the network, it is resumed where it stopped, for the same version. */
export function rangedStream(
  origin: HttpOrigin,
  request: ReadRequest,
  first: Extract<Opened, { kind: 'ranged' }>,
): AsyncIterable<Uint8Array> {
  const what = `read "${request.relative}" at ${origin.description}`;
  const pinned = { ...request, version: first.version };
  const end = first.end + 1;
  return resumeCutReads<Opened>({
    read: origin.cutRead(what, request.relative, request.signal),
    first,
    start: first.start,
    chunksOf: (opened, position) => rangedChunks(opened, position, end, what),
    reopen: (position) => openRange(origin, pinned, position),
    // Also unhooks the caller's signal from the request (see openRangeOnce).
    close: (opened) => {
      if (opened.kind === 'ranged') opened.response.body.destroy();
      else if (opened.kind === 'whole') opened.source.destroy();
    },
  });
}

/**
 * The bytes of one opened answer of a ranged read, from `position` to `end`.
 * @throws {UfsError} ERR_UFS_REMOTE when the origin stopped serving ranges meanwhile; a transient
 *   ERR_UFS_UNREACHABLE when the body ended short (resumeCutReads then opens the rest)
 */
async function* rangedChunks(
  opened: Opened,
  position: number,
  end: number,
  what: string,
): AsyncIterable<Uint8Array> {
  if (opened.kind !== 'ranged') {
    // The origin stopped honouring ranges (or the file shrank) between two requests.
    if (opened.kind === 'whole') opened.source.destroy();
    if (position >= end || opened.kind === 'empty') return;
    throw new UfsError('ERR_UFS_REMOTE', `Cannot ${what}: the server stopped serving ranges`);
  }
  let at = position;
  for await (const chunk of opened.response.body) {
    at += chunk.length;
    yield chunk;
  }
  if (at < end) throw transientError('ERR_UFS_UNREACHABLE', `Cannot ${what}: the response ended early`);
}
