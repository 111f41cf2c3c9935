import { throwIfAborted } from '../lib/index.ts';
import { abortedError } from './abort.ts';
import { checkRootIsDirectory } from './check-root.ts';
import { HttpListing } from './http-listing.ts';
import { HttpOrigin, type HttpUfsOptions } from './http-origin.ts';
import { rangedStream } from './http-ranged-read.ts';
import { FrontToBackReads } from './http-sequential-read.ts';
import { statOnce } from './http-stat.ts';
import { checkRange, normaliseUfsPath } from './paths.ts';
import type { ByteRange, ListOptions, ReadOptions, UfsEntry, UnderFileSystem } from './types.ts';

export type { HttpUfsOptions } from './http-origin.ts';

/**
 * A web server as an under file system (`http://`, `https://`), read-only. This class joins the
 * parts, one file each:
 *
 * - list (http-listing.ts): one GET of each directory's index page: HTML (nginx autoindex, Apache
 *   mod_autoindex, any list of links; see parseIndexLinks) or nginx's `autoindex_format json` /
 *   `xml`. A file whose row gives an exact size and a time is listed from the page alone; one
 *   without (Apache rounds sizes to "1.2K", a plain list of links has neither) is HEADed, a few at
 *   a time.
 * - stat (http-stat.ts): HEAD, or `GET` with `Range: bytes=0-0` where HEAD is refused (405/501); a
 *   path that redirects to itself with a trailing slash, or only exists with one, is a directory.
 * - read, ranged (http-ranged-read.ts): `GET` with `Range` (RFC 9110 §14) and a precondition on the
 *   version asked for, so that a file replaced between two block reads answers 412 →
 *   ERR_UFS_VERSION_CHANGED; every response's own validators are compared as well, for servers that
 *   ignore conditions. A body cut mid-way is resumed from the byte where it stopped, pinned to the
 *   version.
 * - read, front to back (http-sequential-read.ts): a server without ranges (200 to a ranged GET) is
 *   read through a SequentialReaderCache, so that consecutive or parallel block reads share one
 *   download.
 * - versions (http-version.ts): a file gets the same version from a listing, a stat and a GET,
 *   `lm-min:<Last-Modified to the minute>:<size>` wherever the origin sends Last-Modified.
 * - transport (http-origin.ts): requests to an `http:` mount's own origin go through Http1Client
 *   (bodies land in buffers handed to the caller: about a third of undici's CPU per byte,
 *   bench/ufs-read-http.ts); `https:` and redirects to other origins through undici. Redirects,
 *   retries, preconditions and validator checks are the connector's, the same on both.
 */
export class HttpUfs implements UnderFileSystem {
  readonly description: string;
  readonly #origin: HttpOrigin;
  readonly #listing: HttpListing;
  readonly #frontToBack: FrontToBackReads;

  constructor(options: HttpUfsOptions) {
    this.#origin = new HttpOrigin(options);
    this.description = this.#origin.description;
    this.#listing = new HttpListing({
      origin: this.#origin,
      listConcurrency: options.listConcurrency ?? 8,
      listRequestsPerSecond: options.listRequestsPerSecond ?? 1000,
      stat: (path, statOptions) => this.stat(path, statOptions),
    });
    this.#frontToBack = new FrontToBackReads(this.#origin);
  }

  list(path: string, options: ListOptions = {}): AsyncIterable<UfsEntry> {
    return this.#listing.list(path, options);
  }

  async stat(path: string, options: { signal?: AbortSignal } = {}): Promise<UfsEntry> {
    const relative = normaliseUfsPath(path);
    return this.#origin.retrying(`stat "${relative}" at ${this.description}`, options.signal, (signal) =>
      statOnce(this.#origin, relative, signal),
    );
  }

  async read(path: string, range: ByteRange, options: ReadOptions = {}): Promise<AsyncIterable<Uint8Array>> {
    checkRange(range);
    const relative = normaliseUfsPath(path);
    throwIfAborted(options.signal, abortedError(`read of "${relative}" at ${this.description}`));
    if (range.length === 0) return emptyStream();
    const request = {
      url: this.#origin.fileUrl(relative),
      relative,
      range,
      version: options.version,
      signal: options.signal,
      into: options.into,
    };
    // A file already being read front to back, or being opened for that: continue that download
    // rather than start another (see SequentialReaderCache).
    if (this.#frontToBack.continues(request.url)) return this.#frontToBack.stream(request);
    const opened = await this.#frontToBack.open(request, range.offset);
    switch (opened.kind) {
      case 'empty':
        return emptyStream();
      case 'ranged':
        return rangedStream(this.#origin, request, opened);
      case 'reader':
        return this.#frontToBack.stream(request, opened.reader);
    }
  }

  async check(options: { signal?: AbortSignal } = {}): Promise<void> {
    await checkRootIsDirectory(this, options);
  }

  async close(): Promise<void> {
    this.#frontToBack.closeAll();
    await this.#origin.close();
  }
}

async function* emptyStream(): AsyncIterable<Uint8Array> {
  // Nothing: the range starts at or after the end of the file.
}
