// The cache client's HTTP transport to workers: block GETs and load POSTs, and what their answers mean.
import { Pool } from 'undici';
import { toError, type Logger, type SecretValue } from '../lib/index.ts';
import { Http1Client } from '../http/index.ts';
import type { BlockKey } from './block-key.ts';
import { CacheError } from './errors.ts';
import type { WorkerEndpoint } from './membership.ts';
import {
  BLOCK_LOCATION_TYPE,
  BLOCKS_PATH,
  CLIENT_NODE_HEADER,
  LOAD_PATH,
  blockQueryOf,
  type BlockLocationAnswer,
} from './protocol.ts';

/** Longest non-block answer kept (problem details, a block location): they are small. */
const MAX_TEXT_BYTES = 64 * 1024;

/** Thrown inside the client for a worker that answered badly or not at all: try another. */
export class WorkerFailure extends Error {}

/** Thrown inside the client when workers do not serve the block's mount: read the origin. */
export class NotServed extends Error {}

/** Called with the bytes of a block received so far, from its start. */
export type Progress = (arrived: number) => void;

export interface WorkerTransportOptions {
  datasetId: string;
  blockSizeBytes: number;
  nodeName: string;
  token: SecretValue | undefined;
  connectionsPerWorker: number;
  requestTimeoutMs: number;
  logger: Logger;
}

/**
 * What a load POST came to: the block is placed, it lies past the end of the file, or the worker
 * failed (try the next owner).
 */
export type LoadOutcome = 'placed' | 'past-end' | { failed: Error };

/**
 * The connections of one client to the workers, by worker URL: a keep-alive undici Pool for loads and
 * prunes, and an Http1Client for block GETs, whose answers land in the caller's buffer straight from
 * the socket. Both refuse requests once closed.
 */
export class WorkerTransport {
  readonly #datasetId: string;
  readonly #blockSizeBytes: number;
  readonly #nodeName: string;
  readonly #authorization: string | undefined;
  readonly #connectionsPerWorker: number;
  readonly #requestTimeoutMs: number;
  readonly #logger: Logger;
  readonly #pools = new Map<string, Pool>();
  readonly #blockClients = new Map<string, Http1Client>();
  #closed = false;

  constructor(options: WorkerTransportOptions) {
    this.#datasetId = options.datasetId;
    this.#blockSizeBytes = options.blockSizeBytes;
    this.#nodeName = options.nodeName;
    this.#authorization = options.token === undefined ? undefined : `Bearer ${options.token.reveal()}`;
    this.#connectionsPerWorker = options.connectionsPerWorker;
    this.#requestTimeoutMs = options.requestTimeoutMs;
    this.#logger = options.logger;
  }

  /**
   * Asks `worker` for a block (`extra` adds query parameters, `locate` for a block file's location)
   * into `buffer`: its bytes, or where its file lies.
   * @throws {WorkerFailure} a worker that failed or answered badly
   * @throws {NotServed} the workers do not serve the block's mount (421)
   * @throws {CacheError} ERR_CACHE_VERSION_CHANGED, ERR_CACHE_NOT_FOUND, ERR_CACHE_UNAVAILABLE (closed)
   */
  async block(
    worker: WorkerEndpoint,
    key: BlockKey,
    extra: Record<string, string>,
    buffer: Buffer,
    progress: Progress,
  ): Promise<{ data: Buffer } | BlockLocationAnswer> {
    const query = blockQueryOf(
      { datasetId: this.#datasetId, blockSizeBytes: this.#blockSizeBytes, ...key },
      extra,
    );
    let answer;
    try {
      answer = await requestBlock(
        this.#blockClient(worker),
        `${BLOCKS_PATH}?${query}`,
        this.headers(),
        buffer,
        progress,
      );
    } catch (error) {
      if (error instanceof CacheError) throw error;
      throw new WorkerFailure(
        `Cannot read block ${key.index} from worker ${worker.id}: ${toError(error).message}`,
        {
          cause: error,
        },
      );
    }
    const { statusCode } = answer;
    if (statusCode === 200) {
      if (answer.contentType === BLOCK_LOCATION_TYPE) {
        try {
          return JSON.parse(answer.text) as BlockLocationAnswer;
        } catch (error) {
          throw new WorkerFailure(`Worker ${worker.id} sent a malformed location`, { cause: error });
        }
      }
      return { data: buffer.subarray(0, answer.bytes) };
    }
    const detail = problemDetail(answer.text);
    // Past the end of the file: an empty block.
    if (statusCode === 416) return { data: buffer.subarray(0, 0) };
    if (statusCode === 409) throw new CacheError('ERR_CACHE_VERSION_CHANGED', detail);
    if (statusCode === 404) throw new CacheError('ERR_CACHE_NOT_FOUND', detail);
    if (statusCode === 421) throw new NotServed(detail);
    if (statusCode === 401 || statusCode === 403) {
      this.#logger.error({ worker: worker.id, detail }, 'cache worker refused this client');
    }
    throw new WorkerFailure(`Worker ${worker.id} answered ${statusCode}: ${detail}`);
  }

  /**
   * Asks `worker` to cache a block (DataLoad).
   * @throws {CacheError} ERR_CACHE_VERSION_CHANGED, ERR_CACHE_NOT_FOUND, ERR_CACHE_UNAVAILABLE (closed);
   *   anything else a request throws (a connection failure, the abort of `signal`)
   */
  async load(worker: WorkerEndpoint, key: BlockKey, signal: AbortSignal | undefined): Promise<LoadOutcome> {
    const query = blockQueryOf({ datasetId: this.#datasetId, blockSizeBytes: this.#blockSizeBytes, ...key });
    const { statusCode, body } = await this.pool(worker).request({
      path: `${LOAD_PATH}?${query}`,
      method: 'POST',
      headers: this.headers(),
      ...(signal === undefined ? {} : { signal }),
    });
    const text = await body.text();
    if (statusCode === 200) return 'placed';
    if (statusCode === 409) throw new CacheError('ERR_CACHE_VERSION_CHANGED', problemDetail(text));
    if (statusCode === 404) throw new CacheError('ERR_CACHE_NOT_FOUND', problemDetail(text));
    if (statusCode === 416) return 'past-end';
    return { failed: new Error(`Worker ${worker.id} answered ${statusCode}: ${problemDetail(text)}`) };
  }

  /** The headers of every request to a worker: this client's node, and its token if any. */
  headers(): Record<string, string> {
    const headers: Record<string, string> = { [CLIENT_NODE_HEADER]: this.#nodeName };
    if (this.#authorization !== undefined) headers['authorization'] = this.#authorization;
    return headers;
  }

  /** @throws {CacheError} ERR_CACHE_UNAVAILABLE once closed */
  pool(worker: WorkerEndpoint): Pool {
    if (this.#closed)
      throw new CacheError('ERR_CACHE_UNAVAILABLE', 'Cannot read through a closed cache client');
    let pool = this.#pools.get(worker.url);
    if (pool === undefined) {
      pool = new Pool(worker.url, {
        connections: this.#connectionsPerWorker,
        keepAliveTimeout: 60_000,
        headersTimeout: this.#requestTimeoutMs,
        bodyTimeout: 30_000,
        connectTimeout: 5_000,
      });
      this.#pools.set(worker.url, pool);
    }
    return pool;
  }

  #blockClient(worker: WorkerEndpoint): Http1Client {
    if (this.#closed)
      throw new CacheError('ERR_CACHE_UNAVAILABLE', 'Cannot read through a closed cache client');
    let blockClient = this.#blockClients.get(worker.url);
    if (blockClient === undefined) {
      blockClient = new Http1Client({
        origin: new URL(worker.url),
        connections: this.#connectionsPerWorker,
        timeouts: {
          connectTimeoutMs: 5_000,
          headersTimeoutMs: this.#requestTimeoutMs,
          bodyIdleTimeoutMs: 30_000,
        },
      });
      this.#blockClients.set(worker.url, blockClient);
    }
    return blockClient;
  }

  /** Closes the connections to workers no longer in `workers`. */
  forgetGone(workers: readonly WorkerEndpoint[]): void {
    const urls = new Set(workers.map((worker) => worker.url));
    for (const [url, blockClient] of this.#blockClients) {
      if (urls.has(url)) continue;
      this.#blockClients.delete(url);
      blockClient.close();
    }
    for (const [url, pool] of this.#pools) {
      if (urls.has(url)) continue;
      this.#pools.delete(url);
      pool.close().catch(() => undefined);
    }
  }

  async close(): Promise<void> {
    this.#closed = true;
    const pools = [...this.#pools.values()];
    this.#pools.clear();
    for (const blockClient of this.#blockClients.values()) blockClient.close();
    this.#blockClients.clear();
    await Promise.allSettled(pools.map((pool) => pool.destroy()));
  }
}

interface BlockAnswer {
  statusCode: number;
  contentType: string | undefined;
  /** For a 200 `application/octet-stream` answer: the bytes written to the buffer. */
  bytes: number;
  /** Any other answer's body as text. */
  text: string;
}

/**
 * GETs a block from a worker. The answer's body lands in `buffer` straight from the socket
 * (Http1Client's `intoAnyAnswer`: a cold block streamed chunked is decoded in place), so a block
 * costs no allocation and no copy in this process besides the kernel's; progress is reported as
 * the bytes arrive. Rejects when the connection fails before the answer is complete, including a
 * chunked answer cut before its last chunk (a worker whose origin fetch failed), or when the
 * answer would not fit in `buffer`.
 */
async function requestBlock(
  client: Http1Client,
  path: string,
  headers: Record<string, string>,
  buffer: Buffer,
  progress: Progress,
): Promise<BlockAnswer> {
  const response = await client.request({ method: 'GET', path, headers, into: buffer, intoAnyAnswer: true });
  const contentType = response.headers['content-type'];
  const answer: BlockAnswer = { statusCode: response.statusCode, contentType, bytes: 0, text: '' };
  if (response.statusCode !== 200 || contentType !== 'application/octet-stream') {
    answer.text = await response.body.text(MAX_TEXT_BYTES);
    return answer;
  }
  for await (const chunk of response.body) {
    // Not in place only for an answer framed by the close of the connection (not the workers').
    if (chunk.buffer !== buffer.buffer || chunk.byteOffset !== buffer.byteOffset + answer.bytes) {
      if (answer.bytes + chunk.length > buffer.length) {
        throw new RangeError('The worker sent more than a block');
      }
      buffer.set(chunk, answer.bytes);
    }
    answer.bytes += chunk.length;
    progress(answer.bytes);
  }
  return answer;
}

function problemDetail(text: string): string {
  try {
    const parsed = JSON.parse(text) as { detail?: unknown };
    if (typeof parsed.detail === 'string') return parsed.detail;
  } catch {
    // Not problem JSON: quote the start of it.
  }
  return text.slice(0, 200);
}
