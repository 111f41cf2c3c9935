/**
 * The web connector's reads from an origin that ignores Range (200 to a ranged GET): each file is
 * read front to back through a SequentialReaderCache, so that consecutive or parallel block reads
 * share one download, and a download cut mid-way starts again, pinned to the version.
 */
import type { HttpOrigin } from './http-origin.ts';
import { openRange, rangedStream, type Opened, type ReadRequest } from './http-ranged-read.ts';
import { recoverCutRead } from './resumable-read.ts';
import { SequentialReaderCache, type SequentialReader } from './sequential-readers.ts';

/** The front-to-back downloads of one web mount; see the file header. */
export class FrontToBackReads {
  readonly #origin: HttpOrigin;
  readonly #sequential = new SequentialReaderCache();
  /** Origins seen answering a ranged GET with the whole file. */
  readonly #rangeless = new Set<string>();
  /** GETs of range-less files in flight, by URL, so that concurrent reads wait for their reader. */
  readonly #opening = new Map<string, Promise<unknown>>();

  constructor(origin: HttpOrigin) {
    this.#origin = origin;
  }

  /**
   * Whether the file at `url` is being read front to back already, or being opened for that: a
   * read of it continues that download rather than start another.
   */
  continues(url: URL): boolean {
    return this.#rangeless.has(url.origin) && (this.#sequential.has(url.href) || this.#opening.has(url.href));
  }

  /** The request's range from a front-to-back download (see SequentialReaderCache). */
  async *stream(request: ReadRequest, reserved?: SequentialReader): AsyncIterable<Uint8Array> {
    const what = `read "${request.relative}" at ${this.#origin.description}`;
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
          waitMs: this.#origin.retry.deadlineMs,
          signal: request.signal,
        });
      }
      if (reader === undefined) {
        const opened = await this.open(pinned, position);
        if (opened.kind === 'empty') return;
        if (opened.kind === 'ranged') {
          // The origin serves ranges again: no need for the front-to-back path.
          yield* rangedStream(this.#origin, pinned, opened);
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
        await recoverCutRead(
          this.#origin.cutRead(what, request.relative, request.signal),
          error,
          attempt,
          position,
          'restarting a cut read',
        );
      } finally {
        this.#sequential.release(holder);
      }
    }
  }

  /**
   * Opens a GET of the request's range from `from`. A whole-file answer becomes a reader of the
   * SequentialReaderCache reserved for this read, registered before the open counts as finished, so
   * that concurrent reads of the same file (which wait on `#opening`) queue on it.
   */
  async open(
    request: ReadRequest,
    from: number,
  ): Promise<Exclude<Opened, { kind: 'whole' }> | { kind: 'reader'; reader: SequentialReader }> {
    const url = request.url;
    const end = request.range.offset + request.range.length;
    const opening = (async () => {
      const opened = await openRange(this.#origin, request, from);
      if (opened.kind !== 'whole') return opened;
      if (!this.#rangeless.has(url.origin)) {
        this.#rangeless.add(url.origin);
        this.#origin.logger.info(
          { origin: url.origin },
          'origin ignores Range; reading its files front to back',
        );
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

  closeAll(): void {
    this.#sequential.closeAll();
  }
}
