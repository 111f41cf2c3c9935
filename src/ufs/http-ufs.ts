import { Agent, type Dispatcher } from 'undici';
import { Http1Client, type HttpTimeouts } from '../http/index.ts';
import {
  redactUrlCredentials,
  scrubSecrets,
  SecretValue,
  throwIfAborted,
  type Logger,
} from '../lib/index.ts';
import { abortedError } from './abort.ts';
import { UfsError } from './errors.ts';
import { classifyNetworkError, transientError } from './failures.ts';
import { parseAutoindexJson, parseAutoindexXml } from './autoindex-data.ts';
import { parseIndexLinks } from './html-index.ts';
import { checkRange, joinUfsPath, normaliseUfsPath } from './paths.ts';
import { recoverCutRead, resumeCutReads, openPastDeadline, type CutRead } from './resumable-read.ts';
import { withRetry, type ClassifiedFailure, type RetryPolicy } from './retry.ts';
import { SequentialReaderCache, type SequentialReader, type SequentialSource } from './sequential-readers.ts';
import type { ByteRange, ListOptions, ReadOptions, UfsEntry, UnderFileSystem } from './types.ts';

/** Redirects followed per request (RFC 9110 §15.4 leaves the bound to the client). */
const MAX_REDIRECTS = 5;
const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);
/** An index page larger than this is refused rather than held in memory. */
const MAX_INDEX_PAGE_BYTES = 64 * 1024 * 1024;
const MINUTE_MS = 60_000;
/** Listing bounds: deeper or longer paths come from loops at the origin, not from data. */
const MAX_LISTING_DEPTH = 64;
const MAX_PATH_BYTES = 4096;
const QUARTER_HOUR_MS = 15 * MINUTE_MS;
const TIME_VERSION_PREFIX = 'lm-min:';

export interface HttpUfsOptions {
  /** `http(s)://host[:port]/path`: the directory the mount serves. */
  mountPoint: string;
  logger: Logger;
  retry: RetryPolicy;
  timeouts: HttpTimeouts;
  /** HEAD requests in flight per listed directory. Default 8. */
  listConcurrency?: number;
  /** Keep-alive connections per origin. Default 16. */
  connectionsPerOrigin?: number;
  /** Shared dispatcher; when given the connector does not close it. */
  dispatcher?: Dispatcher;
  /**
   * How requests to the mount's own origin travel when it is `http:`: `http1` (Http1Client, which
   * reads bodies into caller-owned buffers) or `undici`. Default `http1`. `https:` origins and
   * redirect targets on other origins always go through undici.
   */
  transport?: 'http1' | 'undici';
  /**
   * Credentials sent to the mount's own origin only (mount options `http.username` and
   * `http.password`, or `http.bearerToken`, from `encryptOptions`). User info in the mount point
   * works too, but shows wherever the URL does (redacted by the daemon and the logs).
   */
  credentials?: { username: string; password: SecretValue } | { bearerToken: SecretValue };
  /**
   * Follow redirects to other origins (mount option `tide.ufs.http.crossOriginRedirects=true`).
   * Default false: a server that cannot be trusted could otherwise point the workers anywhere.
   */
  crossOriginRedirects?: boolean;
  /**
   * Reach link-local addresses (169.254.0.0/16, fe80::/10) and cloud metadata endpoints, as the
   * mount point or through a redirect (`tide.ufs.http.allowLinkLocal=true`). Default false.
   */
  allowLinkLocal?: boolean;
}

/** Host names of cloud metadata services, refused like the link-local addresses they stand for. */
const METADATA_HOSTS = new Set([
  'metadata.google.internal',
  'metadata',
  '100.100.100.200',
  '[fd00:ec2::254]',
]);

/** Whether a URL's host is a link-local address or a metadata service (literal addresses and known names). */
export function isLinkLocalOrMetadata(url: URL): boolean {
  const host = url.hostname.toLowerCase();
  if (METADATA_HOSTS.has(host)) return true;
  if (/^169\.254\.\d{1,3}\.\d{1,3}$/.test(host)) return true;
  // fe80::/10: fe80 to febf.
  return /^\[fe[89ab][0-9a-f]:/.test(host) || /^\[::ffff:169\.254\./.test(host);
}

type Headers = Readonly<Record<string, string | undefined>>;

/** A response body of either transport: iterate it once, or dump or destroy it. */
interface ResponseBody extends AsyncIterable<Uint8Array> {
  /** Reads the rest and throws it away (the connection stays for the next request). */
  dump(): Promise<void>;
  /** Drops the rest and the connection; quiet, safe to call twice. */
  destroy(): void;
}

interface Response {
  statusCode: number;
  headers: Headers;
  body: ResponseBody;
  url: URL;
}

/** A GET of a range, opened: either the range itself (206) or the whole file (200). */
type Opened =
  | { kind: 'empty' }
  | { kind: 'ranged'; response: Response; version: string; start: number; end: number }
  | { kind: 'whole'; source: SequentialSource; start: number };

/**
 * A web server as an under file system (`http://`, `https://`), read-only.
 *
 * - list: one GET of each directory's index page: HTML (nginx autoindex, Apache mod_autoindex, any
 *   list of links; see parseIndexLinks) or nginx's `autoindex_format json` / `xml`. A file whose row
 *   gives an exact size and a time is listed from the page alone; one without (Apache rounds sizes
 *   to "1.2K", a plain list of links has neither) is HEADed, a few at a time.
 * - stat: HEAD, or `GET` with `Range: bytes=0-0` where HEAD is refused (405/501); a path that
 *   redirects to itself with a trailing slash, or only exists with one, is a directory.
 * - read: `GET` with `Range` (RFC 9110 §14) and a precondition on the version asked for, so that a
 *   file replaced between two block reads answers 412 → ERR_UFS_VERSION_CHANGED; every response's
 *   own validators are compared as well, for servers that ignore conditions. A server without ranges
 *   (200 to a ranged GET) is read front to back through a SequentialReaderCache, so that consecutive
 *   or parallel block reads share one download. A body cut mid-way is resumed from the byte where it
 *   stopped, pinned to the version.
 * - transport: requests to an `http:` mount's own origin go through Http1Client (bodies land in
 *   buffers handed to the caller: about a third of undici's CPU per byte, bench/ufs-read-http.ts);
 *   `https:` and redirects to other origins through undici. Redirects, retries, preconditions and
 *   validator checks are this class's, the same on both.
 *
 * Versions. The cache keys blocks by version and the mount keeps a file's pages while its version
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
export class HttpUfs implements UnderFileSystem {
  readonly description: string;
  readonly #base: URL;
  readonly #authorization: SecretValue | undefined;
  readonly #secrets: SecretValue[];
  readonly #crossOriginRedirects: boolean;
  readonly #allowLinkLocal: boolean;
  readonly #logger: Logger;
  readonly #retry: RetryPolicy;
  readonly #timeouts: HttpTimeouts;
  readonly #listConcurrency: number;
  readonly #dispatcher: Dispatcher;
  readonly #ownsDispatcher: boolean;
  /** For the mount's own origin when it is `http:` (see HttpUfsOptions.transport). */
  readonly #http1: Http1Client | undefined;
  readonly #sequential: SequentialReaderCache;
  /** Origins seen answering a ranged GET with the whole file. */
  readonly #rangeless = new Set<string>();
  /** GETs of range-less files in flight, by URL, so that concurrent reads wait for their reader. */
  readonly #opening = new Map<string, Promise<unknown>>();
  /** By origin: whether its index pages' sizes and times give the versions a HEAD gives. */
  readonly #indexTimes = new Map<string, boolean>();

  constructor(options: HttpUfsOptions) {
    let base: URL;
    try {
      base = new URL(options.mountPoint);
    } catch (error) {
      throw new UfsError(
        'ERR_UFS_BAD_CONFIG',
        `Cannot mount "${redactUrlCredentials(options.mountPoint)}" as it is not a URL`,
        {
          cause: error,
        },
      );
    }
    if (base.protocol !== 'http:' && base.protocol !== 'https:') {
      throw new UfsError('ERR_UFS_BAD_CONFIG', `Cannot mount "${base.protocol}" URLs with the web connector`);
    }
    this.#secrets = [];
    const fromUrl =
      base.username !== '' || base.password !== ''
        ? {
            username: decodeURIComponent(base.username),
            password: new SecretValue(decodeURIComponent(base.password)),
          }
        : undefined;
    if (fromUrl !== undefined && options.credentials !== undefined) {
      throw new UfsError(
        'ERR_UFS_BAD_CONFIG',
        `Cannot mount "${redactUrlCredentials(options.mountPoint)}" with credentials both in the URL and in http.* options`,
      );
    }
    const credentials = options.credentials ?? fromUrl;
    if (credentials !== undefined && 'bearerToken' in credentials) {
      this.#secrets.push(credentials.bearerToken);
      this.#authorization = new SecretValue(`Bearer ${credentials.bearerToken.reveal()}`);
      this.#secrets.push(this.#authorization);
    } else if (credentials !== undefined) {
      this.#secrets.push(credentials.password);
      this.#authorization = new SecretValue(
        `Basic ${Buffer.from(`${credentials.username}:${credentials.password.reveal()}`).toString('base64')}`,
      );
      this.#secrets.push(this.#authorization);
    }
    base.username = '';
    base.password = '';
    base.search = '';
    base.hash = '';
    if (!base.pathname.endsWith('/')) base.pathname = `${base.pathname}/`;
    this.#crossOriginRedirects = options.crossOriginRedirects ?? false;
    this.#allowLinkLocal = options.allowLinkLocal ?? false;
    if (!this.#allowLinkLocal && isLinkLocalOrMetadata(base)) {
      throw new UfsError(
        'ERR_UFS_BAD_CONFIG',
        `Cannot mount ${base.origin}: a link-local or metadata address (set tide.ufs.http.allowLinkLocal=true to allow it)`,
      );
    }
    this.#base = base;
    this.description = base.href;
    this.#logger = options.logger.child({ ufs: this.description });
    this.#retry = options.retry;
    this.#timeouts = options.timeouts;
    this.#listConcurrency = options.listConcurrency ?? 8;
    this.#ownsDispatcher = options.dispatcher === undefined;
    this.#dispatcher =
      options.dispatcher ??
      new Agent({
        connections: options.connectionsPerOrigin ?? 16,
        keepAliveTimeout: 30_000,
        connect: { timeout: options.timeouts.connectTimeoutMs },
        headersTimeout: options.timeouts.headersTimeoutMs,
        bodyTimeout: options.timeouts.bodyIdleTimeoutMs,
      });
    this.#sequential = new SequentialReaderCache();
    this.#http1 =
      base.protocol === 'http:' && (options.transport ?? 'http1') === 'http1'
        ? new Http1Client({
            origin: new URL(base.origin),
            connections: options.connectionsPerOrigin ?? 16,
            timeouts: options.timeouts,
          })
        : undefined;
  }

  async *list(path: string, options: ListOptions = {}): AsyncIterable<UfsEntry> {
    const start = normaliseUfsPath(path);
    const pending = [start];
    // Index pages already listed, by the URL they came from after redirects: a link back up the
    // tree (or a redirect to an ancestor) would otherwise be listed again, deeper each time.
    const listedPages = new Set<string>();
    for (let dir = pending.pop(); dir !== undefined; dir = pending.pop()) {
      if (dir !== start && !this.#withinListingBounds(dir)) continue;
      const page = await this.#indexOf(dir, dir === start, options.signal);
      if (page === undefined) continue;
      if (listedPages.has(page.url.href)) {
        this.#logger.warn(
          { dir, page: page.url.href },
          'directory listed already (a loop at the origin): skipped',
        );
        continue;
      }
      listedPages.add(page.url.href);
      const listed: UfsEntry[] = [];
      const unsized: string[] = [];
      for (const link of page.links) {
        const child = joinUfsPath(dir, link.name);
        if (link.directory) {
          yield directoryEntry(child);
          if (options.recursive === true) pending.push(child);
        } else if (link.sizeBytes !== undefined && link.mtimeMs !== undefined) {
          listed.push(timedFileEntry(child, link.sizeBytes, link.mtimeMs));
        } else {
          unsized.push(child);
        }
      }
      if (await this.#trustsIndexTimes(page.url, listed, options.signal)) {
        yield* listed;
      } else {
        for (const entry of listed) unsized.push(entry.path);
      }
      listed.length = 0;
      for await (const entry of this.#statEach(unsized, options.signal)) {
        yield entry;
        // A link without a trailing slash that redirects to a directory.
        if (entry.type === 'directory' && options.recursive === true) pending.push(entry.path);
      }
    }
  }

  async stat(path: string, options: { signal?: AbortSignal } = {}): Promise<UfsEntry> {
    const relative = normaliseUfsPath(path);
    const what = `stat "${relative}" at ${this.description}`;
    return withRetry({
      policy: this.#retry,
      what,
      signal: options.signal,
      logger: this.#logger,
      attempt: (signal) => this.#statOnce(relative, signal),
      classify: (error) => this.#classify(error, what),
    });
  }

  async read(path: string, range: ByteRange, options: ReadOptions = {}): Promise<AsyncIterable<Uint8Array>> {
    checkRange(range);
    const relative = normaliseUfsPath(path);
    throwIfAborted(options.signal, abortedError(`read of "${relative}" at ${this.description}`));
    if (range.length === 0) return emptyStream();
    const url = this.#fileUrl(relative);
    const request = {
      url,
      relative,
      range,
      version: options.version,
      signal: options.signal,
      into: options.into,
    };
    // A file already being read front to back, or being opened for that: continue that download
    // rather than start another (see SequentialReaderCache).
    if (this.#rangeless.has(url.origin) && (this.#sequential.has(url.href) || this.#opening.has(url.href))) {
      return this.#sequentialStream(request);
    }
    const opened = await this.#openForRead(request, range.offset);
    switch (opened.kind) {
      case 'empty':
        return emptyStream();
      case 'ranged':
        return this.#rangedStream(request, opened);
      case 'reader':
        return this.#sequentialStream(request, opened.reader);
    }
  }

  async check(options: { signal?: AbortSignal } = {}): Promise<void> {
    const root = await this.stat('', options);
    if (root.type !== 'directory') {
      throw new UfsError(
        'ERR_UFS_NOT_A_DIRECTORY',
        `Cannot use ${this.description} as it is not a directory`,
      );
    }
  }

  async close(): Promise<void> {
    this.#sequential.closeAll();
    this.#http1?.close();
    if (this.#ownsDispatcher) await this.#dispatcher.destroy();
  }

  // ---- listing -------------------------------------------------------------------------------

  /** The links of a directory's index page; undefined for a directory gone while walking. */
  /** Directories deeper than 64 levels or with paths over 4096 bytes are not listed (a loop, or hostile). */
  #withinListingBounds(dir: string): boolean {
    const depth = dir.split('/').length;
    if (depth <= MAX_LISTING_DEPTH && Buffer.byteLength(dir) <= MAX_PATH_BYTES) return true;
    this.#logger.warn(
      { dir: dir.slice(0, 200), depth },
      `directory beyond ${MAX_LISTING_DEPTH} levels or ${MAX_PATH_BYTES} bytes: not listed`,
    );
    return false;
  }

  async #indexOf(dir: string, isStart: boolean, signal: AbortSignal | undefined) {
    const what = `list "${dir}" at ${this.description}`;
    const page = await withRetry({
      policy: this.#retry,
      what,
      signal,
      logger: this.#logger,
      attempt: async (attemptSignal) => {
        const response = await this.#request({
          method: 'GET',
          url: this.#dirUrl(dir),
          signal: attemptSignal,
        });
        if (response.statusCode === 404 || response.statusCode === 410) {
          await discard(response);
          return undefined;
        }
        if (response.statusCode !== 200) {
          await discard(response);
          throw this.#statusError(response, what);
        }
        const type = indexTypeOf(response.headers['content-type']);
        if (type === undefined) {
          await discard(response);
          return undefined;
        }
        const text = await readLimited(response.body, MAX_INDEX_PAGE_BYTES, what);
        const links =
          type === 'html'
            ? parseIndexLinks(text, response.url)
            : type === 'json'
              ? parseAutoindexJson(text)
              : parseAutoindexXml(text);
        return links === undefined ? undefined : { links, url: response.url };
      },
      classify: (error) => this.#classify(error, what),
    });
    if (page === undefined) {
      if (!isStart) return undefined;
      const entry = await this.stat(dir, signal === undefined ? {} : { signal });
      throw new UfsError(
        entry.type === 'file' ? 'ERR_UFS_NOT_A_DIRECTORY' : 'ERR_UFS_UNSUPPORTED',
        entry.type === 'file'
          ? `Cannot list "${dir}" at ${this.description} as it is a file`
          : `Cannot list "${dir}" at ${this.description} as the server gives no index page for it`,
      );
    }
    return page;
  }

  /**
   * Whether the times `origin`'s index pages print are UTC, so that versions made from them are the
   * ones a HEAD gives (see the class comment). Decided once per origin by a HEAD of one listed file.
   */
  async #trustsIndexTimes(
    pageUrl: URL,
    listed: UfsEntry[],
    signal: AbortSignal | undefined,
  ): Promise<boolean> {
    const origin = pageUrl.origin;
    const known = this.#indexTimes.get(origin);
    if (known !== undefined) return known;
    const sample = listed[0];
    if (sample === undefined) return false;
    let actual: UfsEntry;
    try {
      actual = await this.stat(sample.path, signal === undefined ? {} : { signal });
    } catch (error) {
      if (error instanceof UfsError && error.code === 'ERR_UFS_NOT_FOUND') return false;
      throw error;
    }
    if (actual.version === sample.version) {
      this.#indexTimes.set(origin, true);
      return true;
    }
    const offsetMs = actual.mtimeMs - sample.mtimeMs;
    const localTime =
      actual.sizeBytes === sample.sizeBytes && offsetMs !== 0 && offsetMs % QUARTER_HOUR_MS === 0;
    if (localTime || !actual.version.startsWith(TIME_VERSION_PREFIX)) {
      this.#indexTimes.set(origin, false);
      this.#logger.info(
        { origin, listed: sample.version, head: actual.version },
        'index pages disagree with HEAD; stating every listed file',
      );
    }
    return false;
  }

  /** Stats `paths` a few at a time, yielding in completion order; files gone meanwhile drop out. */
  async *#statEach(paths: string[], signal: AbortSignal | undefined): AsyncIterable<UfsEntry> {
    type Outcome = { id: number; entry?: UfsEntry; error?: unknown };
    const inFlight = new Map<number, Promise<Outcome>>();
    let next = 0;
    while (next < paths.length || inFlight.size > 0) {
      while (inFlight.size < this.#listConcurrency && next < paths.length) {
        const id = next++;
        const path = paths[id] ?? '';
        inFlight.set(
          id,
          this.stat(path, signal === undefined ? {} : { signal }).then(
            (entry) => ({ id, entry }),
            (error: unknown) =>
              error instanceof UfsError && error.code === 'ERR_UFS_NOT_FOUND' ? { id } : { id, error },
          ),
        );
      }
      const outcome = await Promise.race(inFlight.values());
      inFlight.delete(outcome.id);
      if (outcome.error !== undefined) throw outcome.error as Error;
      if (outcome.entry !== undefined) yield outcome.entry;
    }
  }

  // ---- stat ----------------------------------------------------------------------------------

  async #statOnce(relative: string, signal: AbortSignal): Promise<UfsEntry> {
    const what = `stat "${relative}" at ${this.description}`;
    if (relative === '') {
      const response = await this.#probe(this.#base, signal);
      if (response.statusCode >= 200 && response.statusCode < 300) return directoryEntry('');
      throw this.#statusError(response, what);
    }
    const response = await this.#probe(this.#fileUrl(relative), signal);
    if (response.statusCode === 404 || response.statusCode === 410) {
      // Some servers know a directory only by its trailing slash.
      const asDirectory = await this.#probe(this.#dirUrl(relative), signal);
      if (asDirectory.statusCode >= 200 && asDirectory.statusCode < 300) return directoryEntry(relative);
      throw this.#statusError(response, what);
    }
    if (response.statusCode === 416) return fileEntry(relative, response.headers, 0);
    if (response.statusCode < 200 || response.statusCode >= 300) throw this.#statusError(response, what);
    if (response.url.pathname.endsWith('/')) return directoryEntry(relative);
    return fileEntry(relative, response.headers, sizeOf(response));
  }

  /** HEAD, or a one-byte GET where the server refuses HEAD. Bodies are drained. */
  async #probe(url: URL, signal: AbortSignal): Promise<Response> {
    const head = await this.#request({ method: 'HEAD', url, signal });
    await discard(head);
    if (head.statusCode !== 405 && head.statusCode !== 501) return head;
    const get = await this.#request({ method: 'GET', url, signal, headers: { range: 'bytes=0-0' } });
    // Reading on would download a range-less file whole; the headers say all that is needed.
    get.body.destroy();
    return get;
  }

  // ---- read ----------------------------------------------------------------------------------

  /** Opens `GET` for the rest of the request's range from `from`, with retries. */
  async #open(request: ReadRequest, from: number): Promise<Opened> {
    const what = `read "${request.relative}" at ${this.description}`;
    return withRetry({
      policy: this.#retry,
      what,
      signal: request.signal,
      logger: this.#logger,
      attempt: (phase) => this.#openOnce(request, from, phase),
      classify: (error) => this.#classify(error, what),
    });
  }

  async #openOnce(request: ReadRequest, from: number, phase: AbortSignal): Promise<Opened> {
    const what = `read "${request.relative}" at ${this.description}`;
    const last = request.range.offset + request.range.length - 1;
    const { opened, release } = await openPastDeadline(phase, request.signal, (signal) =>
      this.#request({
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
        if (request.version !== undefined && version !== request.version) return fail(changed(what));
        return { kind: 'ranged', response, version, start: contentRange.start, end: contentRange.end };
      }
      case 200: {
        const version = versionOf(response.headers, sizeOf(response));
        if (request.version !== undefined && version !== request.version) return fail(changed(what));
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
        return fail(changed(what));
      default:
        return fail(this.#statusError(response, what));
    }
  }

  /** A 206 body; cut short by the network, it is resumed where it stopped, for the same version. */
  #rangedStream(request: ReadRequest, first: Extract<Opened, { kind: 'ranged' }>): AsyncIterable<Uint8Array> {
    const what = `read "${request.relative}" at ${this.description}`;
    const pinned = { ...request, version: first.version };
    const end = first.end + 1;
    return resumeCutReads<Opened>({
      read: this.#cutRead(request, what),
      first,
      start: first.start,
      chunksOf: (opened, position) => rangedChunks(opened, position, end, what),
      reopen: (position) => this.#open(pinned, position),
      // Also unhooks the caller's signal from the request (see #openOnce).
      close: (opened) => {
        if (opened.kind === 'ranged') opened.response.body.destroy();
        else if (opened.kind === 'whole') opened.source.destroy();
      },
    });
  }

  /** The request's range from a front-to-back download (see SequentialReaderCache). */
  async *#sequentialStream(request: ReadRequest, reserved?: SequentialReader): AsyncIterable<Uint8Array> {
    const what = `read "${request.relative}" at ${this.description}`;
    const end = request.range.offset + request.range.length;
    let position = request.range.offset;
    let reader = reserved;
    // Once bytes are out, every further download must be of the same version.
    let pinned = request;
    for (let attempt = 1; position < end; attempt++) {
      const pending = this.#opening.get(request.url.href);
      if (reader === undefined && pending !== undefined) await pending.catch(() => undefined);
      if (reader === undefined) {
        reader = await this.#sequential.acquire({
          key: request.url.href,
          version: pinned.version,
          offset: position,
          length: end - position,
          waitMs: this.#retry.deadlineMs,
          signal: request.signal,
        });
      }
      if (reader === undefined) {
        const opened = await this.#openForRead(pinned, position);
        if (opened.kind === 'empty') return;
        if (opened.kind === 'ranged') {
          // The origin serves ranges again: no need for the front-to-back path.
          yield* this.#rangedStream(pinned, opened);
          return;
        }
        reader = opened.reader;
      }
      const holder = reader;
      reader = undefined;
      pinned = { ...request, version: holder.version };
      try {
        await holder.skip(position - holder.position, request.signal);
        for await (const chunk of holder.take(end - position, request.signal)) {
          position += chunk.length;
          yield chunk;
        }
        return;
      } catch (error) {
        holder.destroy();
        await recoverCutRead(this.#cutRead(request, what), error, attempt, position, 'restarting a cut read');
      } finally {
        this.#sequential.release(holder);
      }
    }
  }

  // ---- plumbing ------------------------------------------------------------------------------

  /**
   * Opens a GET of the request's range from `from`. A whole-file answer becomes a reader of the
   * SequentialReaderCache reserved for this read, registered before the open counts as finished, so
   * that concurrent reads of the same file (which wait on `#opening`) queue on it.
   */
  async #openForRead(
    request: ReadRequest,
    from: number,
  ): Promise<Exclude<Opened, { kind: 'whole' }> | { kind: 'reader'; reader: SequentialReader }> {
    const url = request.url;
    const end = request.range.offset + request.range.length;
    const opening = (async () => {
      const opened = await this.#open(request, from);
      if (opened.kind !== 'whole') return opened;
      if (!this.#rangeless.has(url.origin)) {
        this.#rangeless.add(url.origin);
        this.#logger.info({ origin: url.origin }, 'origin ignores Range; reading its files front to back');
      }
      return { kind: 'reader' as const, reader: this.#sequential.add(opened.source, end) };
    })();
    if (!this.#rangeless.has(url.origin)) return opening;
    this.#opening.set(url.href, opening);
    try {
      return await opening;
    } finally {
      if (this.#opening.get(url.href) === opening) this.#opening.delete(url.href);
    }
  }

  async #request(init: {
    method: 'GET' | 'HEAD';
    url: URL;
    signal: AbortSignal;
    headers?: Record<string, string>;
    /** Where a 206 body from the mount's own `http:` origin may land (Http1Request.into). */
    into?: Uint8Array | undefined;
  }): Promise<Response> {
    let url = init.url;
    for (let hop = 0; ; hop++) {
      const headers: Record<string, string> = { ...init.headers };
      // Credentials go only to the mount's own origin, never to where a redirect points.
      if (this.#authorization !== undefined && url.origin === this.#base.origin) {
        headers.authorization = this.#authorization.reveal();
      }
      const response = await this.#send(init.method, url, headers, init.signal, init.into);
      const location = response.headers.location;
      if (!REDIRECT_STATUSES.has(response.statusCode) || location === undefined) return { ...response, url };
      await response.body.dump();
      if (hop >= MAX_REDIRECTS) {
        throw new UfsError(
          'ERR_UFS_REMOTE',
          `Cannot follow more than ${MAX_REDIRECTS} redirects from ${init.url.href}`,
        );
      }
      const next = new URL(location, url);
      if (next.protocol !== 'http:' && next.protocol !== 'https:') {
        throw new UfsError('ERR_UFS_REMOTE', `Cannot follow a redirect to a ${next.protocol} URL`);
      }
      if (next.origin !== this.#base.origin && !this.#crossOriginRedirects) {
        throw new UfsError(
          'ERR_UFS_REMOTE',
          `Cannot follow a redirect from ${this.#base.origin} to another origin, ${next.origin} (set tide.ufs.http.crossOriginRedirects=true to allow it)`,
        );
      }
      if (!this.#allowLinkLocal && isLinkLocalOrMetadata(next)) {
        throw new UfsError(
          'ERR_UFS_REMOTE',
          `Cannot follow a redirect to ${next.origin}: a link-local or metadata address (set tide.ufs.http.allowLinkLocal=true to allow it)`,
        );
      }
      url = next;
    }
  }

  /** One request, no redirects: Http1Client for the mount's `http:` origin, else undici. */
  async #send(
    method: 'GET' | 'HEAD',
    url: URL,
    headers: Record<string, string>,
    signal: AbortSignal,
    into?: Uint8Array,
  ): Promise<Omit<Response, 'url'>> {
    const path = `${url.pathname}${url.search}`;
    if (this.#http1 !== undefined && url.origin === this.#base.origin) {
      return this.#http1.request({ method, path, headers, signal, into });
    }
    const response = await this.#dispatcher.request({
      origin: url.origin,
      path,
      method,
      headers,
      signal,
      headersTimeout: this.#timeouts.headersTimeoutMs,
      bodyTimeout: this.#timeouts.bodyIdleTimeoutMs,
    });
    const flat: Record<string, string> = {};
    for (const [name, value] of Object.entries(response.headers)) {
      if (value !== undefined) flat[name] = Array.isArray(value) ? value.join(', ') : value;
    }
    const body = response.body;
    return {
      statusCode: response.statusCode,
      headers: flat,
      body: {
        [Symbol.asyncIterator]: () => body[Symbol.asyncIterator](),
        dump: () => body.dump(),
        destroy: () => {
          // undici emits an 'error' for a body destroyed early, with nobody left to handle it.
          body.on('error', () => undefined);
          body.destroy();
        },
      },
    };
  }

  #statusError(response: Response, what: string): UfsError {
    const status = response.statusCode;
    const text = `Cannot ${what}: the server answered ${status}`;
    if (status === 404 || status === 410) return new UfsError('ERR_UFS_NOT_FOUND', `${text} (nothing there)`);
    if (status === 401 || status === 403)
      return new UfsError('ERR_UFS_ACCESS_DENIED', `${text} (access denied)`);
    if (status === 412) return changed(what);
    if (status === 429 || status >= 500) return transientError('ERR_UFS_REMOTE', text);
    return new UfsError('ERR_UFS_REMOTE', text);
  }

  #cutRead(request: ReadRequest, what: string): CutRead {
    return {
      what,
      path: request.relative,
      signal: request.signal,
      retry: this.#retry,
      logger: this.#logger,
      classify: (error) => this.#classify(error, what),
    };
  }

  #classify(error: unknown, what: string): ClassifiedFailure {
    return classifyNetworkError(error, what, (text) => scrubSecrets(text, this.#secrets));
  }

  #fileUrl(relative: string): URL {
    return new URL(relative.split('/').map(encodeURIComponent).join('/'), this.#base);
  }

  #dirUrl(relative: string): URL {
    return relative === '' ? this.#base : new URL(`${this.#fileUrl(relative).pathname}/`, this.#base);
  }
}

interface ReadRequest {
  url: URL;
  relative: string;
  range: ByteRange;
  version: string | undefined;
  signal: AbortSignal | undefined;
  into: Uint8Array | undefined;
}

function directoryEntry(path: string): UfsEntry {
  return { path, type: 'directory', sizeBytes: 0, mtimeMs: 0, version: '' };
}

function fileEntry(path: string, headers: Headers, sizeBytes: number): UfsEntry {
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
function timedFileEntry(path: string, sizeBytes: number, mtimeMs: number): UfsEntry {
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

function indexTypeOf(contentType: string | undefined): 'html' | 'json' | 'xml' | undefined {
  const type = (contentType ?? '').split(';')[0]?.trim().toLowerCase() ?? '';
  if (type.includes('html')) return 'html';
  if (type === 'application/json') return 'json';
  if (type === 'text/xml' || type === 'application/xml') return 'xml';
  return undefined;
}

/** Size of the file a response is about: the total of Content-Range, else Content-Length. */
function sizeOf(response: Response): number {
  const contentRange = parseContentRange(response.headers['content-range']);
  if (contentRange !== undefined) return contentRange.total;
  const unsatisfied = /^bytes \*\/(\d+)$/.exec(response.headers['content-range'] ?? '');
  if (unsatisfied?.[1] !== undefined) return Number(unsatisfied[1]);
  const length = Number(response.headers['content-length']);
  return Number.isSafeInteger(length) && length >= 0 ? length : 0;
}

/** `bytes 0-99/1234` (RFC 9110 §14.4). */
function parseContentRange(
  value: string | undefined,
): { start: number; end: number; total: number } | undefined {
  const match = /^bytes (\d+)-(\d+)\/(\d+)$/.exec((value ?? '').trim());
  if (match === null) return undefined;
  return { start: Number(match[1]), end: Number(match[2]), total: Number(match[3]) };
}

/**
 * The version of a file from response headers (see the class comment): size and Last-Modified to
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
function conditionalHeaders(version: string | undefined): Record<string, string> {
  if (version === undefined) return {};
  if (version.startsWith('"')) return { 'if-match': version };
  const minute = new RegExp(`^${TIME_VERSION_PREFIX}(\\d+):`).exec(version)?.[1];
  if (minute !== undefined)
    return { 'if-unmodified-since': new Date(Number(minute) + MINUTE_MS - 1000).toUTCString() };
  return {};
}

function changed(what: string): UfsError {
  return new UfsError('ERR_UFS_VERSION_CHANGED', `Cannot ${what} as the file changed since it was listed`);
}

async function discard(response: Response): Promise<void> {
  try {
    await response.body.dump();
  } catch {
    // A body that fails while being thrown away changes nothing.
  }
}

/** `body`, calling `settled` once when it ends, fails, is dumped or is destroyed. */
function onSettled(body: ResponseBody, settled: () => void): ResponseBody {
  let called = false;
  const once = (): void => {
    if (called) return;
    called = true;
    settled();
  };
  return {
    async *[Symbol.asyncIterator]() {
      try {
        yield* body;
      } finally {
        once();
      }
    },
    dump: async () => {
      try {
        await body.dump();
      } finally {
        once();
      }
    },
    destroy: () => {
      body.destroy();
      once();
    },
  };
}

async function readLimited(
  body: AsyncIterable<Uint8Array>,
  limitBytes: number,
  what: string,
): Promise<string> {
  const chunks: Uint8Array[] = [];
  let total = 0;
  for await (const chunk of body) {
    total += chunk.length;
    if (total > limitBytes) {
      throw new UfsError(
        'ERR_UFS_REMOTE',
        `Cannot ${what}: the index page is larger than ${limitBytes} bytes`,
      );
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
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

async function* emptyStream(): AsyncIterable<Uint8Array> {
  // Nothing: the range starts at or after the end of the file.
}
