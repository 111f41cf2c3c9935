import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createHash, timingSafeEqual } from 'node:crypto';
import { hostname } from 'node:os';
import { silentLogger, toError, type Logger, type SecretValue } from '../lib/index.ts';
import { UfsError, type UfsErrorCode, type UnderFileSystem } from '../ufs/index.ts';
import { BlockStore, type BlockLocation } from './block-store.ts';
import { blockIdOf, fileVersionIdOf, type BlockKey } from './block-key.ts';
import { CacheError, type CacheErrorCode } from './errors.ts';
import {
  BLOCK_LOCATION_TYPE,
  BLOCKS_PATH,
  DEFAULT_BLOCK_SIZE_BYTES,
  CLIENT_NODE_HEADER,
  FORGET_PATH,
  HEALTH_PATH,
  LOAD_PATH,
  METRICS_PATH,
  PROBLEM_TYPE,
  SOURCE_HEADER,
  STATS_PATH,
  parseBlockQuery,
  type BlockLocationAnswer,
  type BlockRequest,
  type Problem,
} from './protocol.ts';
import { Semaphore } from './semaphore.ts';
import { BufferPool } from './buffer-pool.ts';
import { checksumsOf, xxh64HexesOf } from './block-checksum.ts';
import type { TierConfig } from './tiers.ts';
import { createWorkerMetrics, type WorkerMetrics } from './worker-metrics.ts';
import {
  emptyCounters,
  type CachedFileBlocks,
  type WorkerCounters,
  type WorkerStats,
} from './worker-stats.ts';

const DEFAULT_ORIGIN_CONCURRENCY = 8;
const EMPTY = Buffer.alloc(0);
const LOOPBACK_HOSTS = new Set(['127.0.0.1', '::1', 'localhost']);

/** One dataset mount as a worker serves it. */
export interface WorkerMount {
  /** The id clients put in block keys: the mount point without credentials. */
  id: string;
  ufs: UnderFileSystem;
}

export interface WorkerOptions {
  /** The dataset this worker caches (`namespace/name`); requests for another one are refused. */
  datasetId: string;
  mounts: readonly WorkerMount[];
  tiers: readonly TierConfig[];
  /** Stable across restarts (it places blocks by rendezvous hashing); default `<nodeName>:<port>`. */
  workerId?: string;
  /** The node (host) the worker runs on; default the host name. */
  nodeName?: string;
  /** Default 4 MiB (`spec.worker.blockSize`). */
  blockSizeBytes?: number;
  /** Default 127.0.0.1. Any other address requires `token`. */
  host?: string;
  /** Default 0: any free port. */
  port?: number;
  /** Per-runtime bearer token every request but the health check must carry. */
  token?: SecretValue;
  /** Ranged reads the worker sends to the origin at once; default 8. */
  originConcurrency?: number;
  /**
   * Write and read SSD/HDD block files with O_DIRECT where the file system takes it; default true
   * (see block-file.ts).
   */
  directIo?: boolean;
  /** Add process metrics (CPU, memory, event loop) to `/metrics`; default false. */
  processMetrics?: boolean;
  logger?: Logger;
}

export interface CacheWorker {
  readonly url: string;
  readonly port: number;
  readonly workerId: string;
  readonly nodeName: string;
  stats(options?: { files?: boolean }): WorkerStats;
  /** Stops accepting requests, waits for cache writes and empties the MEM tier. */
  close(): Promise<void>;
}

/**
 * A block being fetched from the origin into a pooled buffer, shared by every request that asked for
 * it (single-flight). Its bytes are readable as they arrive, so a request streams them on without
 * waiting for the whole block; only a complete block gets a checksum and is cached. Each user holds
 * it while it needs the bytes; the last release returns the buffer to the pool. The buffer is taken
 * only once the fetch has an origin slot, so blocks queued behind the origin limit hold no memory.
 */
class Filling {
  buffer: Buffer = EMPTY;
  /** Bytes arrived so far, from the start of the block. */
  length = 0;
  failure: Error | undefined;
  /** Settles once the block is written to a tier (with where), or could not be (undefined). */
  stored: Promise<BlockLocation | undefined> = Promise.resolve(undefined);
  readonly #pool: BufferPool;
  #complete = false;
  #holds = 1;
  #reusable = true;
  #wakers: (() => void)[] = [];

  constructor(pool: BufferPool) {
    this.#pool = pool;
  }

  /** True once every byte has arrived (a method: it changes across awaits, unlike a narrowed field). */
  isComplete(): boolean {
    return this.#complete;
  }

  get data(): Buffer {
    return this.buffer.subarray(0, this.length);
  }

  /** Resolves when more than `length` bytes have arrived, or the fetch ended either way. */
  changed(length: number): Promise<void> {
    if (this.length > length || this.#complete || this.failure !== undefined) return Promise.resolve();
    return new Promise((resolve) => this.#wakers.push(resolve));
  }

  advance(length: number): void {
    this.length = length;
    this.#wake();
  }

  finish(): void {
    this.#complete = true;
    this.#wake();
  }

  fail(error: Error): void {
    this.failure = error;
    this.#wake();
  }

  hold(): void {
    this.#holds += 1;
  }

  /** `reusable: false` when a socket may still reference the bytes (a response cut short). */
  release(reusable = true): void {
    this.#reusable &&= reusable;
    this.#holds -= 1;
    if (this.#holds === 0 && this.#reusable && this.buffer !== EMPTY) this.#pool.release(this.buffer);
  }

  #wake(): void {
    const wakers = this.#wakers;
    this.#wakers = [];
    for (const wake of wakers) wake();
  }
}

/** A fetch from the origin shared by every request for the same block (single-flight). */
interface Flight {
  readonly filling: Filling;
  readonly controller: AbortController;
  waiters: number;
}

/**
 * Starts a cache worker: an HTTP server (keep-alive) that serves the blocks of one dataset from its
 * tiered store and fetches each missing block from the origin once, however many clients ask.
 * @throws {CacheError} ERR_CACHE_BAD_CONFIG for a non-loopback address without a token, or tiers
 *   that cannot be opened
 */
export async function startWorker(options: WorkerOptions): Promise<CacheWorker> {
  const host = options.host ?? '127.0.0.1';
  if (!LOOPBACK_HOSTS.has(host) && options.token === undefined) {
    throw new CacheError(
      'ERR_CACHE_BAD_CONFIG',
      `Cannot listen on ${host} without a token: only loopback addresses may go unauthenticated`,
    );
  }
  const blockSizeBytes = options.blockSizeBytes ?? DEFAULT_BLOCK_SIZE_BYTES;
  if (!Number.isSafeInteger(blockSizeBytes) || blockSizeBytes < 4096 || blockSizeBytes > 1024 ** 3) {
    throw new CacheError(
      'ERR_CACHE_BAD_CONFIG',
      `Cannot use a block size of ${blockSizeBytes} bytes: use 4 KiB to 1 GiB`,
    );
  }
  const logger = (options.logger ?? silentLogger()).child({
    component: 'cache-worker',
    dataset: options.datasetId,
  });
  const store = await BlockStore.open({
    tiers: options.tiers,
    datasetId: options.datasetId,
    blockSizeBytes,
    logger,
    directIo: options.directIo ?? true,
  });
  const worker = new Worker({ ...options, blockSizeBytes, logger, store });
  try {
    await worker.listen(host, options.port ?? 0);
  } catch (error) {
    await store.close();
    throw new CacheError('ERR_CACHE_BAD_CONFIG', `Cannot listen on ${host}:${options.port ?? 0}`, {
      cause: error,
    });
  }
  logger.info({ url: worker.url, workerId: worker.workerId }, 'cache worker listening');
  return worker;
}

class Worker implements CacheWorker {
  readonly #datasetId: string;
  readonly #mounts: ReadonlyMap<string, UnderFileSystem>;
  readonly #blockSizeBytes: number;
  readonly #store: BlockStore;
  readonly #tokenDigest: Buffer | undefined;
  readonly #originLimit: Semaphore;
  readonly #flights = new Map<string, Flight>();
  readonly #buffers: BufferPool;
  readonly #counters: WorkerCounters = emptyCounters();
  readonly #logger: Logger;
  readonly #server: Server;
  readonly #metrics: WorkerMetrics;
  readonly #configuredWorkerId: string | undefined;
  readonly nodeName: string;
  #url = '';
  #port = 0;
  #closing: Promise<void> | undefined;

  constructor(options: WorkerOptions & { blockSizeBytes: number; logger: Logger; store: BlockStore }) {
    this.#datasetId = options.datasetId;
    this.#mounts = new Map(options.mounts.map((mount) => [mount.id, mount.ufs]));
    this.#blockSizeBytes = options.blockSizeBytes;
    this.#store = options.store;
    // Aligned for direct I/O when the store uses it: the blocks filled here are written from them.
    this.#buffers = new BufferPool(options.blockSizeBytes, 16, { directIo: options.store.directIoProbe() });
    this.#tokenDigest = options.token === undefined ? undefined : digest(options.token.reveal());
    this.#originLimit = new Semaphore(options.originConcurrency ?? DEFAULT_ORIGIN_CONCURRENCY);
    this.#logger = options.logger;
    this.#configuredWorkerId = options.workerId;
    this.nodeName = options.nodeName ?? hostname();
    this.#server = createServer(
      { keepAliveTimeout: 65_000, headersTimeout: 30_000, requestTimeout: 0 },
      (req, res) => {
        void this.#handle(req, res);
      },
    );
    this.#metrics = createWorkerMetrics({
      stats: () => this.stats(),
      labels: { dataset: options.datasetId },
      processMetrics: options.processMetrics ?? false,
    });
  }

  get url(): string {
    return this.#url;
  }

  get port(): number {
    return this.#port;
  }

  get workerId(): string {
    return this.#configuredWorkerId ?? `${this.nodeName}:${this.#port}`;
  }

  async listen(host: string, port: number): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.#server.once('error', reject);
      this.#server.listen(port, host, () => {
        this.#server.off('error', reject);
        resolve();
      });
    });
    const address = this.#server.address() as AddressInfo;
    this.#port = address.port;
    this.#url = `http://${address.family === 'IPv6' ? `[${address.address}]` : address.address}:${address.port}`;
  }

  stats(options: { files?: boolean } = {}): WorkerStats {
    const { tiers, counters } = this.#store.stats();
    const stats: WorkerStats = {
      datasetId: this.#datasetId,
      workerId: this.workerId,
      nodeName: this.nodeName,
      blockSizeBytes: this.#blockSizeBytes,
      capacityBytes: tiers.reduce((sum, tier) => sum + tier.capacityBytes, 0),
      usedBytes: tiers.reduce((sum, tier) => sum + tier.usedBytes, 0),
      cachedBytes: tiers.reduce((sum, tier) => sum + tier.dataBytes, 0),
      tiers,
      counters: { ...this.#counters, ...counters },
    };
    if (options.files === true) {
      const files = new Map<string, CachedFileBlocks>();
      for (const block of this.#store.blocks()) {
        const id = fileVersionIdOf(block.key);
        let file = files.get(id);
        if (file === undefined) {
          file = { mount: block.key.mount, path: block.key.path, version: block.key.version, blocks: [] };
          files.set(id, file);
        }
        file.blocks.push([block.key.index, block.sizeBytes]);
      }
      stats.files = [...files.values()];
    }
    return stats;
  }

  close(): Promise<void> {
    this.#closing ??= (async () => {
      const closed = new Promise<void>((resolve) =>
        this.#server.close(() => {
          resolve();
        }),
      );
      this.#server.closeIdleConnections();
      for (const flight of this.#flights.values()) flight.controller.abort(new Error('worker closing'));
      // Requests in progress get a moment to finish, then their connections are cut.
      const timer = setTimeout(() => {
        this.#server.closeAllConnections();
      }, 2000);
      await closed;
      clearTimeout(timer);
      await this.#store.close();
      this.#logger.info('cache worker stopped');
    })();
    return this.#closing;
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const started = process.hrtime.bigint();
    const url = new URL(req.url ?? '/', 'http://worker');
    let route = 'other';
    try {
      if (url.pathname === HEALTH_PATH && req.method === 'GET') {
        route = 'health';
        send(res, 200, 'text/plain; charset=utf-8', 'ok\n');
        return;
      }
      // The one open route besides health: counters per tier and route, no file names or keys.
      if (url.pathname === METRICS_PATH && req.method === 'GET') {
        route = 'metrics';
        send(res, 200, this.#metrics.registry.contentType, await this.#metrics.registry.metrics());
        return;
      }
      if (!this.#authorised(req)) {
        route = 'unauthorised';
        problem(res, 401, 'ERR_CACHE_FORBIDDEN', 'The request lacks the bearer token of this runtime');
        return;
      }
      if (url.pathname === BLOCKS_PATH && req.method === 'GET') {
        route = 'block';
        await this.#serveBlock(req, res, url.searchParams);
      } else if (url.pathname === BLOCKS_PATH && req.method === 'DELETE') {
        route = 'clear';
        await this.#clear(res);
      } else if (url.pathname === LOAD_PATH && req.method === 'POST') {
        route = 'load';
        await this.#loadBlock(req, res, url.searchParams);
      } else if (url.pathname === FORGET_PATH && req.method === 'POST') {
        route = 'forget';
        await this.#forget(req, res);
      } else if (url.pathname === STATS_PATH && req.method === 'GET') {
        route = 'stats';
        send(
          res,
          200,
          'application/json',
          JSON.stringify(this.stats({ files: url.searchParams.get('files') === '1' })),
        );
      } else {
        problem(res, 404, 'ERR_CACHE_BAD_REQUEST', `No route for ${req.method ?? ''} ${url.pathname}`);
      }
    } catch (error) {
      this.#answerError(res, error);
    } finally {
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      this.#metrics.requestSeconds.observe({ route, status: String(res.statusCode) }, seconds);
    }
  }

  /**
   * Drops the blocks of file versions a DataLoad found changed or gone at the origin, so that they
   * free their space now rather than when the LRU reaches them.
   */
  async #forget(req: IncomingMessage, res: ServerResponse): Promise<void> {
    let files: readonly FileVersion[];
    try {
      files = parseForgetRequest(await readBody(req, MAX_FORGET_BODY_BYTES));
    } catch (error) {
      problem(res, 400, 'ERR_CACHE_BAD_REQUEST', `Cannot forget blocks: ${toError(error).message}`);
      return;
    }
    const doomed = new Set(files.map((file) => fileVersionIdOf(file)));
    const keys: BlockKey[] = [];
    let bytes = 0;
    for (const block of this.#store.blocks()) {
      if (!doomed.has(fileVersionIdOf(block.key))) continue;
      keys.push(block.key);
      bytes += block.sizeBytes;
    }
    let dropped = 0;
    for (const key of keys) if (await this.#store.delete(key)) dropped += 1;
    this.#counters.forgottenBlocks += dropped;
    send(res, 200, 'application/json', JSON.stringify({ blocks: dropped, bytes }));
  }

  /**
   * Drops every block: the runtime is being removed (Kubernetes mode), and hostPath tiers would
   * otherwise keep their files on the node after the worker pod is gone.
   */
  async #clear(res: ServerResponse): Promise<void> {
    let blocks = 0;
    let bytes = 0;
    for (const block of [...this.#store.blocks()]) {
      if (!(await this.#store.delete(block.key))) continue;
      blocks += 1;
      bytes += block.sizeBytes;
    }
    this.#counters.forgottenBlocks += blocks;
    this.#logger.info({ blocks, bytes }, 'dropped every block: the runtime is being removed');
    send(res, 200, 'application/json', JSON.stringify({ blocks, bytes }));
  }

  #authorised(req: IncomingMessage): boolean {
    if (this.#tokenDigest === undefined) return true;
    const header = req.headers.authorization ?? '';
    if (!header.startsWith('Bearer ')) return false;
    // Digests have equal lengths, so the comparison takes the same time whatever was sent.
    return timingSafeEqual(digest(header.slice('Bearer '.length)), this.#tokenDigest);
  }

  #blockOf(res: ServerResponse, query: URLSearchParams): { key: BlockKey; ufs: UnderFileSystem } | undefined {
    const request = parseBlockQuery(query);
    if (typeof request === 'string') {
      problem(res, 400, 'ERR_CACHE_BAD_REQUEST', `Cannot serve the block as ${request}`);
      return undefined;
    }
    if (request.datasetId !== this.#datasetId) {
      problem(
        res,
        403,
        'ERR_CACHE_FORBIDDEN',
        `This worker serves dataset ${this.#datasetId}, not ${request.datasetId}`,
      );
      return undefined;
    }
    if (request.blockSizeBytes !== this.#blockSizeBytes) {
      problem(
        res,
        400,
        'ERR_CACHE_BAD_REQUEST',
        `Cannot serve ${request.blockSizeBytes}-byte blocks: this worker's block size is ${this.#blockSizeBytes}`,
      );
      return undefined;
    }
    const ufs = this.#mounts.get(request.mount);
    if (ufs === undefined) {
      // 421 Misdirected Request (RFC 9110 §15.5.20): not a missing file, a mount this worker lacks.
      problem(res, 421, 'ERR_CACHE_NOT_FOUND', `This worker has no mount "${request.mount}"`);
      return undefined;
    }
    return { key: keyOf(request), ufs };
  }

  async #serveBlock(req: IncomingMessage, res: ServerResponse, query: URLSearchParams): Promise<void> {
    const block = this.#blockOf(res, query);
    if (block === undefined) return;
    const local = req.headers[CLIENT_NODE_HEADER] === this.nodeName;
    const wantsLocation = query.get('locate') === '1';
    const countServed = (bytes: number): void => {
      if (local) this.#counters.servedLocalBytes += bytes;
      else this.#counters.servedRemoteBytes += bytes;
    };

    if (wantsLocation) {
      const location = this.#store.locate(block.key);
      if (location !== undefined) {
        this.#counters.hits += 1;
        countServed(location.sizeBytes);
        this.#counters.locatedBytes += location.sizeBytes;
        sendLocation(res, location, location.medium.toLowerCase());
        return;
      }
    } else {
      const buffer = this.#buffers.acquire();
      const stored = await this.#store.get(block.key, { into: buffer }).catch((error: unknown) => {
        this.#buffers.release(buffer);
        throw error;
      });
      if (stored !== undefined) {
        this.#counters.hits += 1;
        countServed(stored.data.length);
        // Reused once the socket has taken every byte; a response cut short just drops it.
        res.once('finish', () => {
          this.#buffers.release(buffer);
        });
        sendBlock(res, stored.data, stored.medium.toLowerCase());
        return;
      }
      this.#buffers.release(buffer);
    }

    const { filling, joined, leave } = this.#join(block.key, block.ufs, abortOnClose(res));
    res.once('close', () => {
      leave();
      filling.release(res.writableFinished);
    });
    // The answer starts with the first bytes from the origin, not after the whole block: a small
    // first read does not wait for 4 MiB. A fetch that fails before any byte answers an error.
    await filling.changed(0);
    if (filling.failure !== undefined) throw filling.failure;
    const sent = await streamBlock(res, filling, joined ? 'flight' : 'origin');
    if (!sent) return;
    if (joined) {
      this.#counters.hits += 1;
      countServed(filling.length);
    } else {
      this.#counters.misses += 1;
      this.#counters.servedOriginBytes += filling.length;
    }
  }

  async #loadBlock(_req: IncomingMessage, res: ServerResponse, query: URLSearchParams): Promise<void> {
    const block = this.#blockOf(res, query);
    if (block === undefined) return;
    if (this.#store.has(block.key)) {
      send(res, 200, 'application/json', JSON.stringify({ cached: true, source: 'cache' }));
      return;
    }
    const { filling, joined, leave } = this.#join(block.key, block.ufs, abortOnClose(res));
    let location: BlockLocation | undefined;
    try {
      while (!filling.isComplete() && filling.failure === undefined) await filling.changed(filling.length);
      if (filling.failure !== undefined) throw filling.failure;
      location = await filling.stored;
    } finally {
      leave();
      filling.release();
    }
    if (!joined) this.#counters.loadedBytes += filling.length;
    send(
      res,
      200,
      'application/json',
      JSON.stringify({
        cached: location !== undefined,
        source: joined ? 'flight' : 'origin',
        sizeBytes: filling.length,
      }),
    );
  }

  /**
   * Joins the origin fetch of a block under way, or starts one. The caller holds the returned
   * filling (release it when done with the bytes) and calls `leave` when it no longer waits; the
   * fetch is aborted when every request waiting for an incomplete block has gone.
   */
  #join(
    key: BlockKey,
    ufs: UnderFileSystem,
    signal: AbortSignal,
  ): { filling: Filling; joined: boolean; leave: () => void } {
    const id = blockIdOf(key);
    let flight = this.#flights.get(id);
    const joined = flight !== undefined;
    if (flight === undefined) {
      flight = {
        filling: new Filling(this.#buffers),
        controller: new AbortController(),
        waiters: 0,
      };
      this.#flights.set(id, flight);
      void this.#fill(id, key, ufs, flight.filling, flight.controller.signal);
    }
    const current = flight;
    current.waiters += 1;
    current.filling.hold();
    let left = false;
    const leave = (): void => {
      if (left) return;
      left = true;
      signal.removeEventListener('abort', leave);
      current.waiters -= 1;
      const { filling } = current;
      if (current.waiters === 0 && !filling.isComplete() && filling.failure === undefined) {
        current.controller.abort(signal.reason);
      }
    };
    signal.addEventListener('abort', leave, { once: true });
    return { filling: current.filling, joined, leave };
  }

  /**
   * Reads a block from the origin into `filling`, then caches it. The flight stays joinable until
   * the block is in a tier (requests meanwhile join it instead of missing the store); it is
   * forgotten in the same turn as its own hold ends, so no request joins a released buffer.
   */
  async #fill(
    id: string,
    key: BlockKey,
    ufs: UnderFileSystem,
    filling: Filling,
    signal: AbortSignal,
  ): Promise<void> {
    const forget = (): void => {
      if (this.#flights.get(id)?.filling === filling) this.#flights.delete(id);
    };
    let length = 0;
    try {
      const release = await this.#originLimit.acquire(signal);
      const buffer = this.#buffers.acquire();
      filling.buffer = buffer;
      try {
        const stream = await ufs.read(
          key.path,
          { offset: key.index * this.#blockSizeBytes, length: this.#blockSizeBytes },
          { version: key.version, signal, into: buffer },
        );
        for await (const chunk of stream) {
          if (length + chunk.byteLength > buffer.length) {
            throw new CacheError('ERR_CACHE_PROTOCOL', `The origin sent more than a block of "${key.path}"`);
          }
          // Connectors that can read straight into the buffer (ReadOptions.into) leave no copy to do.
          if (!isInPlace(chunk, buffer, length)) buffer.set(chunk, length);
          length += chunk.byteLength;
          filling.advance(length);
        }
        this.#counters.originReads += 1;
      } finally {
        this.#counters.originBytes += length;
        release();
      }
      if (length === 0 && key.index > 0) {
        throw new CacheError(
          'ERR_CACHE_BAD_REQUEST',
          `Block ${key.index} of "${key.path}" is past the end of the file`,
        );
      }
    } catch (error) {
      forget();
      filling.fail(toError(error));
      filling.release();
      return;
    }
    const data = filling.data;
    const checksums = checksumsOf(data);
    filling.stored = this.#store
      .put(key, data, checksums)
      .catch((error: unknown) => {
        this.#logger.warn({ err: toError(error) }, 'cannot cache a block');
        return undefined;
      })
      .finally(() => {
        forget();
        filling.release();
      });
    filling.finish();
  }

  #answerError(res: ServerResponse, error: unknown): void {
    if (res.headersSent || res.destroyed) {
      res.destroy();
      return;
    }
    if (error instanceof UfsError) {
      const status = UFS_STATUS[error.code] ?? 502;
      const code: CacheErrorCode =
        status === 404
          ? 'ERR_CACHE_NOT_FOUND'
          : status === 409
            ? 'ERR_CACHE_VERSION_CHANGED'
            : 'ERR_CACHE_UNAVAILABLE';
      problem(res, status, code, error.message);
      return;
    }
    if (error instanceof CacheError) {
      const status =
        error.code === 'ERR_CACHE_BAD_REQUEST' ? 416 : error.code === 'ERR_CACHE_ABORTED' ? 503 : 502;
      problem(res, status, error.code, error.message);
      return;
    }
    this.#logger.error({ err: toError(error) }, 'request failed');
    problem(res, 500, 'ERR_CACHE_UNAVAILABLE', 'The worker failed to serve the request');
  }
}

const UFS_STATUS: Partial<Record<UfsErrorCode, number>> = {
  ERR_UFS_NOT_FOUND: 404,
  ERR_UFS_IS_A_DIRECTORY: 404,
  ERR_UFS_NOT_A_DIRECTORY: 404,
  ERR_UFS_VERSION_CHANGED: 409,
  ERR_UFS_ABORTED: 503,
};

/** A forget request names at most this much (about 50,000 file versions). */
const MAX_FORGET_BODY_BYTES = 16 * 1024 * 1024;

type FileVersion = Pick<BlockKey, 'mount' | 'path' | 'version'>;

function readBody(req: IncomingMessage, limitBytes: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let length = 0;
    req.on('data', (chunk: Buffer) => {
      length += chunk.length;
      if (length > limitBytes) {
        req.destroy();
        reject(new Error(`the body exceeds ${limitBytes} bytes`));
        return;
      }
      chunks.push(chunk);
    });
    req.once('end', () => {
      resolve(Buffer.concat(chunks).toString('utf8'));
    });
    req.once('error', reject);
  });
}

function parseForgetRequest(text: string): FileVersion[] {
  const body = JSON.parse(text) as { files?: unknown };
  if (!Array.isArray(body.files)) throw new Error('the body has no "files" array');
  return body.files.map((file: unknown, index) => {
    const { mount, path, version } = (file ?? {}) as Record<string, unknown>;
    if (typeof mount !== 'string' || typeof path !== 'string' || typeof version !== 'string') {
      throw new Error(`files[${index}] needs string mount, path and version`);
    }
    return { mount, path, version };
  });
}

function keyOf(request: BlockRequest): BlockKey {
  return { mount: request.mount, path: request.path, version: request.version, index: request.index };
}

/** True when `chunk` is already in `buffer` at `position` (read there by the connector). */
function isInPlace(chunk: Uint8Array, buffer: Buffer, position: number): boolean {
  return chunk.buffer === buffer.buffer && chunk.byteOffset === buffer.byteOffset + position;
}

function digest(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}

/** A signal that fires when the client goes away before the answer is complete. */
function abortOnClose(res: ServerResponse): AbortSignal {
  const controller = new AbortController();
  res.once('close', () => {
    if (!res.writableFinished) controller.abort(new Error('client went away'));
  });
  return controller.signal;
}

function send(res: ServerResponse, status: number, type: string, body: string | Buffer): void {
  res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

function sendBlock(res: ServerResponse, data: Buffer, source: string): void {
  res.writeHead(200, {
    'content-type': 'application/octet-stream',
    'content-length': data.length,
    [SOURCE_HEADER]: source,
  });
  res.end(data);
}

/**
 * Sends a block as its bytes arrive: with its length when it is already complete, else
 * chunked. A fetch that fails half-way cuts the connection, so the client sees a broken body and
 * retries elsewhere, never a short block. Resolves false when the response did not complete.
 */
async function streamBlock(res: ServerResponse, filling: Filling, source: string): Promise<boolean> {
  if (filling.isComplete()) {
    sendBlock(res, filling.data, source);
    return true;
  }
  res.writeHead(200, { 'content-type': 'application/octet-stream', [SOURCE_HEADER]: source });
  let sent = 0;
  for (;;) {
    if (res.destroyed) return false;
    if (filling.length > sent) {
      const more = filling.buffer.subarray(sent, filling.length);
      sent = filling.length;
      if (!res.write(more)) await drained(res);
    } else if (filling.failure !== undefined) {
      res.destroy();
      return false;
    } else if (filling.isComplete()) {
      res.end();
      return true;
    } else {
      await filling.changed(sent);
    }
  }
}

function drained(res: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.on('drain', done);
    res.on('close', done);
  });
}

function sendLocation(res: ServerResponse, location: BlockLocation, source: string): void {
  const answer: BlockLocationAnswer = {
    filePath: location.filePath,
    sizeBytes: location.sizeBytes,
    ...checksumsAnswerOf(location),
    medium: location.medium,
  };
  const body = JSON.stringify(answer);
  res.writeHead(200, {
    'content-type': BLOCK_LOCATION_TYPE,
    'content-length': Buffer.byteLength(body),
    [SOURCE_HEADER]: source,
  });
  res.end(body);
}

/** The checksums of a location as JSON carries them: piece XXH64s as hex. */
function checksumsAnswerOf(
  location: BlockLocation,
): Pick<BlockLocationAnswer, 'pieceBytes' | 'pieceXxh64s' | 'crc32' | 'pieceCrc32s'> {
  const { pieceBytes, pieceXxh64s, crc32, pieceCrc32s } = location;
  if (pieceBytes !== undefined && pieceXxh64s !== undefined) {
    return { pieceBytes, pieceXxh64s: xxh64HexesOf(pieceXxh64s) };
  }
  return {
    ...(crc32 === undefined ? {} : { crc32 }),
    ...(pieceBytes === undefined || pieceCrc32s === undefined
      ? {}
      : { pieceBytes, pieceCrc32s: [...pieceCrc32s] }),
  };
}

function problem(res: ServerResponse, status: number, code: string, detail: string): void {
  const body: Problem = { type: 'about:blank', title: TITLES[status] ?? 'Error', status, detail, code };
  send(res, status, PROBLEM_TYPE, JSON.stringify(body));
}

const TITLES: Partial<Record<number, string>> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  409: 'Conflict',
  416: 'Range Not Satisfiable',
  421: 'Misdirected Request',
  500: 'Internal Server Error',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
};
