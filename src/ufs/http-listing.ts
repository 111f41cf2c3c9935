/**
 * The web connector's listing: one GET of each directory's index page (HTML, or nginx's JSON and
 * XML formats), files without an exact size and time on it HEADed a few at a time, and the walk
 * kept out of loops at the origin.
 */
import { TokenBucket } from '../lib/index.ts';
import { abortedError } from './abort.ts';
import { UfsError } from './errors.ts';
import { parseAutoindexJson, parseAutoindexXml } from './autoindex-data.ts';
import { parseIndexLinks } from './html-index.ts';
import { discard, type HttpOrigin } from './http-origin.ts';
import { directoryEntry } from './http-stat.ts';
import { judgeIndexTimes, timedFileEntry } from './http-version.ts';
import { joinUfsPath, normaliseUfsPath } from './paths.ts';
import type { ListOptions, UfsEntry } from './types.ts';

/** An index page larger than this is refused rather than held in memory. */
const MAX_INDEX_PAGE_BYTES = 64 * 1024 * 1024;
/** Listing bounds: deeper or longer paths come from loops at the origin, not from data. */
const MAX_LISTING_DEPTH = 64;
const MAX_PATH_BYTES = 4096;

export interface HttpListingOptions {
  origin: HttpOrigin;
  /** HEAD requests in flight per listed directory. */
  listConcurrency: number;
  /** Requests (index pages and HEADs) per second, across the connector's listings. */
  listRequestsPerSecond: number;
  /** The connector's stat, with its retries. */
  stat: (path: string, options: { signal?: AbortSignal }) => Promise<UfsEntry>;
}

/** Lists the directories of one web mount; see the file header. */
export class HttpListing {
  readonly #origin: HttpOrigin;
  readonly #listConcurrency: number;
  readonly #requests: TokenBucket;
  readonly #stat: (path: string, options: { signal?: AbortSignal }) => Promise<UfsEntry>;
  /** By origin: whether its index pages' sizes and times give the versions a HEAD gives. */
  readonly #indexTimes = new Map<string, boolean>();

  constructor(options: HttpListingOptions) {
    this.#origin = options.origin;
    this.#listConcurrency = options.listConcurrency;
    this.#requests = new TokenBucket(options.listRequestsPerSecond);
    this.#stat = options.stat;
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
        this.#origin.logger.warn(
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

  /** Directories deeper than 64 levels or with paths over 4096 bytes are not listed (a loop, or hostile). */
  #withinListingBounds(dir: string): boolean {
    const depth = dir.split('/').length;
    if (depth <= MAX_LISTING_DEPTH && Buffer.byteLength(dir) <= MAX_PATH_BYTES) return true;
    this.#origin.logger.warn(
      { dir: dir.slice(0, 200), depth },
      `directory beyond ${MAX_LISTING_DEPTH} levels or ${MAX_PATH_BYTES} bytes: not listed`,
    );
    return false;
  }

  /** The links of a directory's index page; undefined for a directory gone while walking. */
  async #indexOf(dir: string, isStart: boolean, signal: AbortSignal | undefined) {
    const what = `list "${dir}" at ${this.#origin.description}`;
    await this.#requests.take(1, signal, abortedError(what));
    const page = await this.#origin.retrying(what, signal, async (attemptSignal) => {
      const response = await this.#origin.request({
        method: 'GET',
        url: this.#origin.dirUrl(dir),
        signal: attemptSignal,
      });
      if (response.statusCode === 404 || response.statusCode === 410) {
        await discard(response);
        return undefined;
      }
      if (response.statusCode !== 200) {
        await discard(response);
        throw this.#origin.statusError(response, what);
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
    });
    if (page === undefined) {
      if (!isStart) return undefined;
      const entry = await this.#stat(dir, signal === undefined ? {} : { signal });
      throw new UfsError(
        entry.type === 'file' ? 'ERR_UFS_NOT_A_DIRECTORY' : 'ERR_UFS_UNSUPPORTED',
        entry.type === 'file'
          ? `Cannot list "${dir}" at ${this.#origin.description} as it is a file`
          : `Cannot list "${dir}" at ${this.#origin.description} as the server gives no index page for it`,
      );
    }
    return page;
  }

  /**
   * Whether the times `origin`'s index pages print are UTC, so that versions made from them are the
   * ones a HEAD gives (see http-version.ts). Decided once per origin by a HEAD of one listed file.
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
      actual = await this.#pacedStat(sample.path, signal);
    } catch (error) {
      if (error instanceof UfsError && error.code === 'ERR_UFS_NOT_FOUND') return false;
      throw error;
    }
    const verdict = judgeIndexTimes(sample, actual);
    if (verdict === 'trusted') {
      this.#indexTimes.set(origin, true);
      return true;
    }
    if (verdict === 'distrusted') {
      this.#indexTimes.set(origin, false);
      this.#origin.logger.info(
        { origin, listed: sample.version, head: actual.version },
        'index pages disagree with HEAD; stating every listed file',
      );
    }
    return false;
  }

  /** A HEAD of the listing, within its request rate. */
  async #pacedStat(path: string, signal: AbortSignal | undefined): Promise<UfsEntry> {
    await this.#requests.take(1, signal, abortedError(`stat "${path}" at ${this.#origin.description}`));
    return this.#stat(path, signal === undefined ? {} : { signal });
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
          this.#pacedStat(path, signal).then(
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
}

function indexTypeOf(contentType: string | undefined): 'html' | 'json' | 'xml' | undefined {
  const type = (contentType ?? '').split(';')[0]?.trim().toLowerCase() ?? '';
  if (type.includes('html')) return 'html';
  if (type === 'application/json') return 'json';
  if (type === 'text/xml' || type === 'application/xml') return 'xml';
  return undefined;
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
