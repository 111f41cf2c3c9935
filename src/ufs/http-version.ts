/**
 * The web connector's version scheme.
 *
 * The cache keys blocks by version and the mount keeps a file's pages while its version
 * holds, so a file must get the same version from a listing, a stat and the headers of a GET, and a
 * listing must never give a version that a later HEAD would replace. An index page shows a size and
 * a modification time to the minute (nginx: exact bytes, GMT); HEAD and GET show Last-Modified to
 * the second and an ETag, which the page cannot give (nginx's is `"<mtime hex>-<size hex>"`, seconds).
 * So the version is `lm-min:<Last-Modified truncated to the minute, ms>:<size>` wherever the origin
 * sends Last-Modified, and every mtimeMs is truncated to the minute the same way; only an origin
 * without Last-Modified is versioned by its strong ETag (If-Match), else by size alone. Reads send
 * `If-Unmodified-Since: <the version's minute>:59`, so any change in a later minute answers 412, and
 * compare size and minute of every response. The price, accepted: a file rewritten with the same
 * size within the same minute as the version seen keeps its version (blocks cached before and after
 * may then mix the two contents); the gain is that listing 100,000 files costs one GET per directory
 * instead of 100,000 HEADs. A page's times are read as UTC; Apache (always) and nginx with
 * `autoindex_localtime on` print local time, so the first listed file of each origin is HEADed and
 * the page's times are trusted for that origin only if it agrees (an offset of whole quarter hours,
 * or no Last-Modified, means HEAD every file of that origin; a file changed meanwhile means ask again
 * on the next page). A server in a zone whose offset is zero part of the year (Europe/London) would
 * pass that check and give other-season files versions that their first read finds changed.
 */
import { UfsError } from './errors.ts';
import type { UfsEntry } from './types.ts';

export type Headers = Readonly<Record<string, string | undefined>>;

const MINUTE_MS = 60_000;
const QUARTER_HOUR_MS = 15 * MINUTE_MS;
const TIME_VERSION_PREFIX = 'lm-min:';

/** A file as the headers of a HEAD or GET show it. */
export function fileEntry(path: string, headers: Headers, sizeBytes: number): UfsEntry {
  const mtimeMs = Date.parse(headers['last-modified'] ?? '');
  return {
    path,
    type: 'file',
    sizeBytes,
    mtimeMs: Number.isNaN(mtimeMs) ? 0 : toMinute(mtimeMs),
    version: versionOf(headers, sizeBytes),
  };
}

/** A file as an index page shows it: the entry a HEAD would give for that size and time. */
export function timedFileEntry(path: string, sizeBytes: number, mtimeMs: number): UfsEntry {
  return {
    path,
    type: 'file',
    sizeBytes,
    mtimeMs: toMinute(mtimeMs),
    version: timeVersion(sizeBytes, mtimeMs),
  };
}

function toMinute(ms: number): number {
  return Math.floor(ms / MINUTE_MS) * MINUTE_MS;
}

function timeVersion(sizeBytes: number, mtimeMs: number): string {
  return `${TIME_VERSION_PREFIX}${toMinute(mtimeMs)}:${sizeBytes}`;
}

/**
 * The version of a file from response headers (see the file header): size and Last-Modified to
 * the minute, so that index pages give the same; else the strong ETag (weak ones never match
 * If-Match, RFC 9110 §13.1.1); else the size.
 */
export function versionOf(headers: Headers, sizeBytes: number): string {
  const lastModified = Date.parse(headers['last-modified'] ?? '');
  if (!Number.isNaN(lastModified)) return timeVersion(sizeBytes, lastModified);
  const etag = headers.etag;
  if (typeof etag === 'string' && etag.startsWith('"')) return etag;
  return `size:${sizeBytes}`;
}

/**
 * If-Match for an ETag version; for a time version If-Unmodified-Since the last second of its
 * minute (RFC 9110 §13.1.4: 412 when Last-Modified is later), so a change in any later minute fails.
 */
export function conditionalHeaders(version: string | undefined): Record<string, string> {
  if (version === undefined) return {};
  if (version.startsWith('"')) return { 'if-match': version };
  const minute = new RegExp(`^${TIME_VERSION_PREFIX}(\\d+):`).exec(version)?.[1];
  if (minute !== undefined)
    return { 'if-unmodified-since': new Date(Number(minute) + MINUTE_MS - 1000).toUTCString() };
  return {};
}

export function versionChanged(what: string): UfsError {
  return new UfsError('ERR_UFS_VERSION_CHANGED', `Cannot ${what} as the file changed since it was listed`);
}

/**
 * What a HEAD of the first file listed from an origin's index page says about the page's times:
 * `trusted` when it gives the listed version (the page prints UTC), `distrusted` when the page
 * prints local time (the same size, an offset of whole quarter hours) or the origin sends no
 * Last-Modified, `undecided` when the file changed meanwhile (ask again on the next page).
 */
export function judgeIndexTimes(listed: UfsEntry, head: UfsEntry): 'trusted' | 'distrusted' | 'undecided' {
  if (head.version === listed.version) return 'trusted';
  const offsetMs = head.mtimeMs - listed.mtimeMs;
  const localTime = head.sizeBytes === listed.sizeBytes && offsetMs !== 0 && offsetMs % QUARTER_HOUR_MS === 0;
  return localTime || !head.version.startsWith(TIME_VERSION_PREFIX) ? 'distrusted' : 'undecided';
}
