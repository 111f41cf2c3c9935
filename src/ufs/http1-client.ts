/**
 * A small HTTP/1.1 client for plain `http:` origins, made for one job: moving large response
 * bodies into memory with as little CPU per byte as Node allows. Node sockets in their usual mode
 * allocate a fresh 64 KiB buffer for every read; at a gigabyte per second that allocation and the
 * garbage it makes cost more CPU than the copy from the kernel (bench/ufs-read.ts: undici, which
 * reads that way, needs about 1 s of CPU per GiB on loopback; this client about 0.3 s). Here the
 * socket reads with `onread` straight into the buffers that are handed to the caller: the bytes of a
 * body are copied once, by the kernel, and each chunk is a view of a segment that is never reused,
 * so the caller may keep it. A caller that has a buffer for the body already (a cache worker filling
 * a block) passes it as `into`, and a 206 body that fits is read straight into it: no allocation
 * at all per read, and nothing for the caller to copy.
 *
 * What it speaks (RFC 9112): one request at a time per connection, keep-alive, bodies framed by
 * Content-Length (the fast path), chunked or ended by the close (a slow path for the small error
 * documents that servers send that way). What it does not: TLS, pipelining, request bodies,
 * redirects, upgrades. The S3 connector uses it for GetObject on `http:` endpoints, the web
 * connector for every request to its `http:` origin (it follows redirects itself); undici carries
 * the rest.
 *
 * Errors carry a `code` that `classifyNetworkError` sorts: Node's socket codes (ECONNRESET,
 * ECONNREFUSED…) as they come, and `ERR_HTTP1_*` for timeouts, early ends and malformed answers.
 */
import { connect, type Socket } from 'node:net';
import type { HttpTimeouts } from './http-ufs.ts';

/** A segment holds this much body at most; smaller bodies get a segment of their own size. */
const SEGMENT_BYTES = 1024 * 1024;
/** Room for a response head (status line and headers) and for slow-path reads. */
const SCRATCH_BYTES = 16 * 1024;
const MAX_HEAD_BYTES = 64 * 1024;
/** Body bytes queued for a slow consumer before the socket stops reading. */
const HIGH_WATER_BYTES = 4 * 1024 * 1024;
/**
 * A chunked body read into the caller's buffer goes there straight from the socket while this much
 * room is left; the last bytes come through the scratch, so that the framing after the data (a
 * chunk's CRLF, the last chunk) never needs room past the end of the buffer.
 */
const MIN_DIRECT_CHUNKED_BYTES = 64 * 1024;

export type Http1ErrorCode =
  | 'ERR_HTTP1_CONNECT_TIMEOUT'
  | 'ERR_HTTP1_HEADERS_TIMEOUT'
  | 'ERR_HTTP1_BODY_TIMEOUT'
  | 'ERR_HTTP1_EARLY_END'
  | 'ERR_HTTP1_BAD_RESPONSE'
  | 'ERR_HTTP1_CLOSED';

/** A transport failure; `code` is what classifyNetworkError reads. */
export class Http1Error extends Error {
  readonly code: Http1ErrorCode;
  constructor(code: Http1ErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'Http1Error';
    this.code = code;
  }
}

export interface Http1ClientOptions {
  /** `http://host:port`: the one origin this client talks to. */
  origin: URL;
  /** Connections open at most; further requests wait for one. */
  connections: number;
  timeouts: HttpTimeouts;
}

export interface Http1Request {
  method: 'GET' | 'HEAD';
  /** Path and query, already escaped. */
  path: string;
  /** Header names in lower case; `host` is added when missing. */
  headers: Readonly<Record<string, string>>;
  /** Aborts the request and its body; the connection is then closed, not reused. */
  signal?: AbortSignal | undefined;
  /**
   * Where the body of a 206 answer lands when it fits (its Content-Length at most this long): the
   * socket reads straight into it, from its start, and the chunks are views of it in order. Any
   * other answer reads into segments of its own. The caller must not touch the buffer until the
   * body ended or was destroyed.
   */
  into?: Uint8Array | undefined;
  /**
   * With `into`: the body of every answer lands in it, whatever its status and framing (a chunked
   * body is decoded in place: the socket reads into the buffer and the data moves down over the
   * framing), and a body longer than `into` fails the request (ERR_HTTP1_BAD_RESPONSE). For a
   * server of our own whose answers have a known bound: a cache worker's blocks.
   */
  intoAnyAnswer?: boolean | undefined;
}

export interface Http1Response {
  statusCode: number;
  /** Names in lower case; repeated headers joined with `, `. */
  headers: Record<string, string>;
  body: Http1Body;
}

/** The body of a response: iterate it once, or dump/destroy it. */
export interface Http1Body extends AsyncIterable<Uint8Array> {
  /** Reads the rest and throws it away, keeping the connection for the next request. */
  dump(): Promise<void>;
  /** The rest as text, up to `limitBytes` (more is cut). */
  text(limitBytes: number): Promise<string>;
  /** Stops reading; the connection is closed unless the body was complete. */
  destroy(): void;
}

/** Connections to one `http:` origin; see the file header. */
export class Http1Client {
  readonly #origin: URL;
  readonly #maxConnections: number;
  readonly #timeouts: HttpTimeouts;
  readonly #idle: Connection[] = [];
  readonly #waiting: Array<(connection: Connection | undefined) => void> = [];
  #open = 0;
  #closed = false;

  constructor(options: Http1ClientOptions) {
    if (options.origin.protocol !== 'http:') {
      throw new TypeError(`Cannot use Http1Client for ${options.origin.protocol} origins, only http:`);
    }
    if (!Number.isSafeInteger(options.connections) || options.connections < 1) {
      throw new RangeError(`Cannot open ${options.connections} connections: give a positive integer`);
    }
    this.#origin = options.origin;
    this.#maxConnections = options.connections;
    this.#timeouts = options.timeouts;
  }

  /**
   * Sends a request and resolves with the response head; the body streams after. A request on a
   * kept-alive connection that the server had closed meanwhile is sent once more on a new one
   * (only GET and HEAD are sent, both idempotent).
   * @throws {Http1Error | Error} transport failures (with a `code`); the signal's reason on abort
   */
  async request(request: Http1Request): Promise<Http1Response> {
    request.signal?.throwIfAborted();
    for (let attempt = 1; ; attempt++) {
      const connection = await this.#acquire(request.signal);
      try {
        return await connection.send(request, this.#head(request));
      } catch (error) {
        request.signal?.throwIfAborted();
        if (error instanceof StaleConnectionError && attempt === 1) continue;
        throw error instanceof StaleConnectionError ? error.cause : error;
      }
    }
  }

  /** Closes every connection; requests in flight fail. */
  close(): void {
    this.#closed = true;
    for (const connection of this.#idle.splice(0)) connection.destroy(undefined);
    for (const waiter of this.#waiting.splice(0)) waiter(undefined);
  }

  #head(request: Http1Request): string {
    let head = `${request.method} ${request.path} HTTP/1.1\r\n`;
    if (request.headers.host === undefined) head += `host: ${this.#origin.host}\r\n`;
    for (const [name, value] of Object.entries(request.headers)) {
      if (/[\r\n]/.test(value)) throw new TypeError(`Cannot send header ${name} with a line break in it`);
      head += `${name}: ${value}\r\n`;
    }
    return `${head}\r\n`;
  }

  async #acquire(signal: AbortSignal | undefined): Promise<Connection> {
    if (this.#closed)
      throw new Http1Error('ERR_HTTP1_CLOSED', 'Cannot send a request as the client is closed');
    const idle = this.#idle.pop();
    if (idle !== undefined) return idle;
    if (this.#open < this.#maxConnections) return this.#connect(signal);
    const connection = await new Promise<Connection | undefined>((resolve, reject) => {
      const onAbort = (): void => {
        const index = this.#waiting.indexOf(waiter);
        if (index !== -1) this.#waiting.splice(index, 1);
        reject(signal?.reason as Error);
      };
      const waiter = (next: Connection | undefined): void => {
        signal?.removeEventListener('abort', onAbort);
        resolve(next);
      };
      this.#waiting.push(waiter);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
    // undefined: a connection closed and left room for a new one, or the client closed.
    return connection ?? this.#acquire(signal);
  }

  async #connect(signal: AbortSignal | undefined): Promise<Connection> {
    this.#open++;
    const connection = new Connection({
      origin: this.#origin,
      timeouts: this.#timeouts,
      onIdle: (idle) => {
        this.#release(idle);
      },
      onClose: (closed) => {
        const index = this.#idle.indexOf(closed);
        if (index !== -1) this.#idle.splice(index, 1);
        this.#open--;
        this.#waiting.shift()?.(undefined);
      },
    });
    // A failed connect closes the connection, and onClose counts it out.
    await connection.connected(signal);
    return connection;
  }

  #release(connection: Connection): void {
    if (this.#closed) {
      connection.destroy(undefined);
      return;
    }
    const waiter = this.#waiting.shift();
    if (waiter === undefined) this.#idle.push(connection);
    else waiter(connection);
  }
}

/** Sent on a kept-alive connection that turned out closed before any byte of an answer. */
class StaleConnectionError extends Error {
  override readonly cause: Error;
  constructor(cause: Error) {
    super('the kept-alive connection was closed by the server', { cause });
    this.cause = cause;
  }
}

type BodyFraming =
  | { kind: 'none' }
  | { kind: 'length'; remaining: number }
  | { kind: 'chunked'; state: ChunkedState }
  | { kind: 'close' };

interface ChunkedState {
  /** Bytes left of the current chunk's data; -1 while reading a size line. */
  remaining: number;
  /** The CRLF after chunk data still to skip. */
  skipCrlf: number;
  /** Partial size line, or the trailer section once the last chunk was seen. */
  line: string;
  inTrailer: boolean;
}

/** One request and its response on a connection. */
interface Exchange {
  method: 'GET' | 'HEAD';
  /** The caller's buffer (Http1Request.into), until the head shows whether the body goes there. */
  into: Uint8Array | undefined;
  /** Bytes of `into` filled so far. */
  intoUsed: number;
  intoAnyAnswer: boolean;
  resolveHead: (response: Http1Response) => void;
  rejectHead: (error: Error) => void;
  headDone: boolean;
  /** Any byte of the answer arrived (a stale connection sends none). */
  answered: boolean;
  reused: boolean;
  framing: BodyFraming;
  keepAlive: boolean;
  queue: Uint8Array[];
  queuedBytes: number;
  ended: boolean;
  error: Error | undefined;
  wake: (() => void) | undefined;
  detachSignal: () => void;
  headersTimer: NodeJS.Timeout | undefined;
}

class Connection {
  readonly #socket: Socket;
  readonly #origin: URL;
  readonly #timeouts: HttpTimeouts;
  readonly #onIdle: (connection: Connection) => void;
  readonly #onClose: (connection: Connection) => void;
  readonly #scratch = Buffer.allocUnsafe(SCRATCH_BYTES);
  /** Bytes of a response head read so far (usually one read). */
  #head: Buffer | undefined;
  #segment: Buffer | undefined;
  #segmentUsed = 0;
  #exchange: Exchange | undefined;
  #requests = 0;
  #destroyed = false;
  #paused = false;
  #connectError: Error | undefined;

  constructor(options: {
    origin: URL;
    timeouts: HttpTimeouts;
    onIdle: (connection: Connection) => void;
    onClose: (connection: Connection) => void;
  }) {
    this.#origin = options.origin;
    this.#timeouts = options.timeouts;
    this.#onIdle = options.onIdle;
    this.#onClose = options.onClose;
    this.#socket = connect({
      host: options.origin.hostname.replace(/^\[|\]$/g, ''),
      port: Number(options.origin.port === '' ? 80 : options.origin.port),
      noDelay: true,
      onread: {
        buffer: () => this.#nextBuffer(),
        callback: (bytes: number, buffer: Uint8Array) => this.#onRead(bytes, buffer),
      },
    });
    this.#socket.on('error', (error) => {
      this.#connectError = error;
      this.#fail(error);
    });
    this.#socket.on('close', () => {
      this.#destroyed = true;
      this.#fail(new Http1Error('ERR_HTTP1_EARLY_END', 'the server closed the connection'));
      this.#onClose(this);
    });
    this.#socket.on('timeout', () => {
      this.destroy(new Http1Error('ERR_HTTP1_BODY_TIMEOUT', 'the response body stalled'));
    });
  }

  async connected(signal: AbortSignal | undefined): Promise<void> {
    if (!this.#socket.connecting) return;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        finish(
          new Http1Error(
            'ERR_HTTP1_CONNECT_TIMEOUT',
            `connecting to ${this.#origin.host} took longer than ${this.#timeouts.connectTimeoutMs} ms`,
          ),
        );
      }, this.#timeouts.connectTimeoutMs);
      const onAbort = (): void => {
        finish(signal?.reason as Error);
      };
      const finish = (error: Error | undefined): void => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        this.#socket.off('connect', onConnect);
        this.#socket.off('close', onClose);
        if (error === undefined) {
          resolve();
        } else {
          this.destroy(error);
          reject(error);
        }
      };
      const onConnect = (): void => {
        finish(undefined);
      };
      const onClose = (): void => {
        finish(this.#connectError ?? new Http1Error('ERR_HTTP1_EARLY_END', 'the connection closed'));
      };
      this.#socket.once('connect', onConnect);
      this.#socket.once('close', onClose);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  send(request: Http1Request, head: string): Promise<Http1Response> {
    if (this.#destroyed) {
      return Promise.reject(new StaleConnectionError(new Http1Error('ERR_HTTP1_EARLY_END', 'closed')));
    }
    return new Promise<Http1Response>((resolve, reject) => {
      const signal = request.signal;
      const onAbort = (): void => {
        this.destroy(signal?.reason as Error);
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      const exchange: Exchange = {
        method: request.method,
        into: request.into,
        intoUsed: 0,
        intoAnyAnswer: request.intoAnyAnswer === true,
        resolveHead: resolve,
        rejectHead: reject,
        headDone: false,
        answered: false,
        reused: this.#requests > 0,
        framing: { kind: 'none' },
        keepAlive: true,
        queue: [],
        queuedBytes: 0,
        ended: false,
        error: undefined,
        wake: undefined,
        detachSignal: () => {
          signal?.removeEventListener('abort', onAbort);
        },
        headersTimer: setTimeout(() => {
          this.destroy(
            new Http1Error(
              'ERR_HTTP1_HEADERS_TIMEOUT',
              `no response headers within ${this.#timeouts.headersTimeoutMs} ms`,
            ),
          );
        }, this.#timeouts.headersTimeoutMs),
      };
      this.#requests++;
      this.#exchange = exchange;
      this.#head = undefined;
      this.#socket.write(head, 'latin1');
    });
  }

  destroy(error: Error | undefined): void {
    if (error !== undefined) this.#fail(error);
    this.#destroyed = true;
    this.#socket.destroy();
  }

  // ---- reading -------------------------------------------------------------------------------

  /** Where the next socket read lands: the body's segment on the fast path, else the scratch. */
  #nextBuffer(): Uint8Array {
    const framing = this.#exchange?.framing;
    if (this.#exchange?.headDone !== true) return this.#scratch;
    if (framing?.kind === 'chunked' && this.#exchange.into !== undefined) {
      const { into, intoUsed } = this.#exchange;
      return into.length - intoUsed >= MIN_DIRECT_CHUNKED_BYTES ? into.subarray(intoUsed) : this.#scratch;
    }
    if (framing?.kind !== 'length') return this.#scratch;
    const into = this.#exchange.into;
    if (into !== undefined) {
      const used = this.#exchange.intoUsed;
      return into.subarray(used, used + framing.remaining);
    }
    if (this.#segment === undefined || this.#segmentUsed === this.#segment.length) {
      this.#segment = Buffer.allocUnsafe(Math.min(SEGMENT_BYTES, framing.remaining));
      this.#segmentUsed = 0;
    }
    // Never past the end of this body, so no byte of another answer lands in a caller's buffer.
    const end = Math.min(this.#segment.length, this.#segmentUsed + framing.remaining);
    return this.#segment.subarray(this.#segmentUsed, end);
  }

  #onRead(bytes: number, buffer: Uint8Array): boolean {
    const exchange = this.#exchange;
    if (exchange === undefined || exchange.ended) {
      // Bytes nobody asked for: the connection is out of step with the server.
      this.destroy(undefined);
      return false;
    }
    exchange.answered = true;
    if (!exchange.headDone) {
      this.#onHeadBytes(exchange, Buffer.from(buffer.buffer, buffer.byteOffset, bytes));
    } else if (exchange.framing.kind === 'chunked' && exchange.into !== undefined) {
      this.#onChunkedIntoBytes(exchange, Buffer.from(buffer.buffer, buffer.byteOffset, bytes));
    } else if (exchange.framing.kind === 'length' && exchange.into !== undefined) {
      // The read went into the caller's buffer (see #nextBuffer).
      const chunk = exchange.into.subarray(exchange.intoUsed, exchange.intoUsed + bytes);
      exchange.intoUsed += bytes;
      this.#onBodyBytes(exchange, chunk);
    } else if (exchange.framing.kind === 'length') {
      // The read went into the segment (see #nextBuffer): hand out the view, no copy.
      const chunk = (this.#segment ?? this.#scratch).subarray(this.#segmentUsed, this.#segmentUsed + bytes);
      this.#segmentUsed += bytes;
      this.#onBodyBytes(exchange, chunk);
    } else {
      this.#onSlowBodyBytes(exchange, Buffer.from(buffer.buffer, buffer.byteOffset, bytes));
    }
    // An answer that just ended has handed the connection back to the pool (it is no longer the
    // current exchange): pausing now would leave the next answer unread until its headers timeout.
    if (this.#exchange === exchange && exchange.queuedBytes >= HIGH_WATER_BYTES && !this.#destroyed) {
      this.#paused = true;
      return false;
    }
    return true;
  }

  #onHeadBytes(exchange: Exchange, bytes: Buffer): void {
    const head = this.#head === undefined ? Buffer.from(bytes) : Buffer.concat([this.#head, bytes]);
    const end = head.indexOf('\r\n\r\n');
    if (end === -1) {
      if (head.length > MAX_HEAD_BYTES) {
        this.destroy(new Http1Error('ERR_HTTP1_BAD_RESPONSE', 'the response head is too large'));
        return;
      }
      this.#head = head;
      return;
    }
    this.#head = undefined;
    const parsed = parseHead(head.subarray(0, end).toString('latin1'));
    if (parsed === undefined) {
      this.destroy(new Http1Error('ERR_HTTP1_BAD_RESPONSE', 'the response is not HTTP/1.1'));
      return;
    }
    if (parsed.statusCode < 200) {
      // 1xx interim answers (RFC 9110 §15.2): wait for the final one.
      this.#onHeadBytes(exchange, head.subarray(end + 4));
      return;
    }
    const framing = framingOf(exchange.method, parsed.statusCode, parsed.headers);
    const intoBytes = exchange.into?.length ?? 0;
    if (exchange.intoAnyAnswer && framing.kind === 'length' && framing.remaining > intoBytes) {
      this.destroy(
        new Http1Error(
          'ERR_HTTP1_BAD_RESPONSE',
          `the answer of ${framing.remaining} bytes does not fit in the ${intoBytes}-byte buffer`,
        ),
      );
      return;
    }
    clearTimeout(exchange.headersTimer);
    exchange.headDone = true;
    exchange.keepAlive = parsed.keepAlive;
    exchange.framing = framing;
    const fits = exchange.intoAnyAnswer
      ? framing.kind === 'length' || framing.kind === 'chunked'
      : parsed.statusCode === 206 && framing.kind === 'length' && framing.remaining <= intoBytes;
    if (!fits) exchange.into = undefined;
    if (
      exchange.framing.kind === 'none' ||
      (exchange.framing.kind === 'length' && exchange.framing.remaining === 0)
    ) {
      exchange.framing = { kind: 'none' };
      this.#finish(exchange);
    } else {
      this.#socket.setTimeout(this.#timeouts.bodyIdleTimeoutMs);
    }
    exchange.resolveHead({
      statusCode: parsed.statusCode,
      headers: parsed.headers,
      body: this.#bodyOf(exchange),
    });
    const rest = head.subarray(end + 4);
    if (rest.length === 0 || exchange.ended) return;
    if (exchange.framing.kind === 'length') {
      // Body bytes that came with the head: the only body bytes ever copied.
      const take = Math.min(rest.length, exchange.framing.remaining);
      const bytes = rest.subarray(0, take);
      if (exchange.into === undefined) {
        this.#onBodyBytes(exchange, Buffer.from(bytes));
      } else {
        exchange.into.set(bytes, exchange.intoUsed);
        exchange.intoUsed += take;
        this.#onBodyBytes(exchange, exchange.into.subarray(exchange.intoUsed - take, exchange.intoUsed));
      }
    } else if (exchange.framing.kind === 'chunked' && exchange.into !== undefined) {
      this.#onChunkedIntoBytes(exchange, rest);
    } else {
      this.#onSlowBodyBytes(exchange, rest);
    }
  }

  #onBodyBytes(exchange: Exchange, chunk: Uint8Array): void {
    const framing = exchange.framing;
    if (framing.kind !== 'length') return;
    framing.remaining -= chunk.length;
    this.#push(exchange, chunk);
    if (framing.remaining <= 0) this.#finish(exchange);
  }

  #onSlowBodyBytes(exchange: Exchange, bytes: Buffer): void {
    const framing = exchange.framing;
    if (framing.kind === 'close') {
      this.#push(exchange, Buffer.from(bytes));
      return;
    }
    if (framing.kind !== 'chunked') return;
    const result = decodeChunked(framing.state, bytes);
    if (result === undefined) {
      this.destroy(new Http1Error('ERR_HTTP1_BAD_RESPONSE', 'the chunked body is malformed'));
      return;
    }
    for (const chunk of result.chunks) this.#push(exchange, chunk);
    if (result.done) this.#finish(exchange);
  }

  /**
   * Chunked bytes for the caller's buffer: `bytes` is either the buffer itself right after the data
   * so far (a direct read) or the scratch. The data moves to the end of the data so far (memmove
   * within the buffer, or a copy from the scratch) and goes out as one view.
   */
  #onChunkedIntoBytes(exchange: Exchange, bytes: Buffer): void {
    const framing = exchange.framing;
    const into = exchange.into;
    if (framing.kind !== 'chunked' || into === undefined) return;
    const ranges: number[] = [];
    const result = decodeChunkedRanges(framing.state, bytes, ranges);
    if (result === undefined) {
      this.destroy(new Http1Error('ERR_HTTP1_BAD_RESPONSE', 'the chunked body is malformed'));
      return;
    }
    const first = exchange.intoUsed;
    // A direct read starts right after the data so far; anything else is a copy elsewhere.
    const inPlace = bytes.buffer === into.buffer && bytes.byteOffset === into.byteOffset + first;
    for (let index = 0; index < ranges.length; index += 2) {
      const from = ranges[index] ?? 0;
      const to = ranges[index + 1] ?? 0;
      if (exchange.intoUsed + (to - from) > into.length) {
        this.destroy(
          new Http1Error('ERR_HTTP1_BAD_RESPONSE', `the body does not fit in the ${into.length}-byte buffer`),
        );
        return;
      }
      if (!inPlace) into.set(bytes.subarray(from, to), exchange.intoUsed);
      else if (first + from !== exchange.intoUsed)
        into.copyWithin(exchange.intoUsed, first + from, first + to);
      exchange.intoUsed += to - from;
    }
    this.#push(exchange, into.subarray(first, exchange.intoUsed));
    if (result === 'done') this.#finish(exchange);
  }

  #push(exchange: Exchange, chunk: Uint8Array): void {
    if (chunk.length === 0) return;
    exchange.queue.push(chunk);
    exchange.queuedBytes += chunk.length;
    exchange.wake?.();
  }

  /** The answer is complete: the connection goes back to the pool, or closes. */
  #finish(exchange: Exchange): void {
    exchange.ended = true;
    exchange.detachSignal();
    exchange.wake?.();
    this.#socket.setTimeout(0);
    this.#segment = undefined;
    this.#exchange = undefined;
    if (!exchange.keepAlive || this.#destroyed) {
      this.destroy(undefined);
      return;
    }
    if (this.#paused) {
      this.#paused = false;
      this.#socket.resume();
    }
    this.#onIdle(this);
  }

  #fail(error: Error): void {
    const exchange = this.#exchange;
    if (exchange === undefined) return;
    this.#exchange = undefined;
    clearTimeout(exchange.headersTimer);
    exchange.detachSignal();
    if (!exchange.headDone) {
      const closedUnderUs =
        exchange.reused && !exchange.answered && (isEarlyEnd(error) || hasCode(error, 'ECONNRESET', 'EPIPE'));
      exchange.rejectHead(closedUnderUs ? new StaleConnectionError(error) : error);
      return;
    }
    if (exchange.ended) return;
    if (exchange.framing.kind === 'close' && isEarlyEnd(error)) {
      // A body framed by the close ends with it (RFC 9112 §6.3, rule 8).
      exchange.ended = true;
    } else {
      exchange.error = error;
    }
    exchange.wake?.();
  }

  #bodyOf(exchange: Exchange): Http1Body {
    const next = async (): Promise<IteratorResult<Uint8Array>> => {
      for (;;) {
        const chunk = exchange.queue.shift();
        if (chunk !== undefined) {
          exchange.queuedBytes -= chunk.length;
          if (this.#paused && exchange.queuedBytes < HIGH_WATER_BYTES / 2 && !exchange.ended) {
            this.#paused = false;
            this.#socket.resume();
          }
          return { value: chunk, done: false };
        }
        if (exchange.error !== undefined) throw exchange.error;
        if (exchange.ended) return { value: undefined, done: true };
        await new Promise<void>((resolve) => {
          exchange.wake = resolve;
        });
        exchange.wake = undefined;
      }
    };
    const destroy = (): void => {
      exchange.queue.length = 0;
      exchange.queuedBytes = 0;
      if (!exchange.ended && exchange.error === undefined) {
        exchange.error = new Http1Error('ERR_HTTP1_CLOSED', 'the body was destroyed');
        this.destroy(undefined);
      }
    };
    const iterator: AsyncIterator<Uint8Array> = {
      next,
      return: () => {
        destroy();
        return Promise.resolve({ value: undefined, done: true });
      },
    };
    return {
      [Symbol.asyncIterator]: () => iterator,
      dump: async () => {
        for (let result = await next(); result.done !== true; result = await next()) {
          // Thrown away.
        }
      },
      text: async (limitBytes) => {
        const chunks: Uint8Array[] = [];
        let total = 0;
        for (let result = await next(); result.done !== true; result = await next()) {
          if (total < limitBytes) chunks.push(result.value);
          total += result.value.length;
        }
        return Buffer.concat(chunks).subarray(0, limitBytes).toString('utf8');
      },
      destroy,
    };
  }
}

function isEarlyEnd(error: Error): boolean {
  return error instanceof Http1Error && error.code === 'ERR_HTTP1_EARLY_END';
}

function hasCode(error: Error, ...codes: string[]): boolean {
  const code = (error as { code?: unknown }).code;
  return typeof code === 'string' && codes.includes(code);
}

interface ParsedHead {
  statusCode: number;
  headers: Record<string, string>;
  keepAlive: boolean;
}

function parseHead(text: string): ParsedHead | undefined {
  const lines = text.split('\r\n');
  const status = /^HTTP\/1\.([01]) (\d{3})(?: .*)?$/.exec(lines[0] ?? '');
  if (status === null) return undefined;
  const headers: Record<string, string> = {};
  for (let index = 1; index < lines.length; index++) {
    const line = lines[index] ?? '';
    const colon = line.indexOf(':');
    if (colon <= 0) return undefined;
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    const previous = headers[name];
    headers[name] = previous === undefined ? value : `${previous}, ${value}`;
  }
  const connection = (headers.connection ?? '').toLowerCase();
  const keepAlive = status[1] === '1' ? !connection.includes('close') : connection.includes('keep-alive');
  return { statusCode: Number(status[2]), headers, keepAlive };
}

/** How the body of an answer ends (RFC 9112 §6.3). */
function framingOf(method: string, statusCode: number, headers: Record<string, string>): BodyFraming {
  if (method === 'HEAD' || statusCode === 204 || statusCode === 304) return { kind: 'none' };
  const transferEncoding = headers['transfer-encoding'];
  if (transferEncoding !== undefined) {
    return /(?:^|,)\s*chunked\s*$/i.test(transferEncoding)
      ? { kind: 'chunked', state: { remaining: -1, skipCrlf: 0, line: '', inTrailer: false } }
      : { kind: 'close' };
  }
  const length = headers['content-length'];
  if (length !== undefined) {
    const remaining = Number(length);
    if (!/^\d+$/.test(length) || !Number.isSafeInteger(remaining)) return { kind: 'close' };
    return { kind: 'length', remaining };
  }
  return { kind: 'close' };
}

/** Decodes what `bytes` holds of a chunked body; undefined when it is malformed. */
export function decodeChunked(
  state: ChunkedState,
  bytes: Buffer,
): { chunks: Buffer[]; done: boolean } | undefined {
  const ranges: number[] = [];
  const result = decodeChunkedRanges(state, bytes, ranges);
  if (result === undefined) return undefined;
  const chunks: Buffer[] = [];
  for (let index = 0; index < ranges.length; index += 2) {
    chunks.push(Buffer.from(bytes.subarray(ranges[index], ranges[index + 1])));
  }
  return { chunks, done: result === 'done' };
}

/**
 * Decodes what `bytes` holds of a chunked body (RFC 9112 §7.1): appends the `[from, to)` offsets of
 * its data in `bytes` to `ranges`. 'done' after the last chunk and its trailer section, undefined
 * when it is malformed.
 */
export function decodeChunkedRanges(
  state: ChunkedState,
  bytes: Buffer,
  ranges: number[],
): 'more' | 'done' | undefined {
  let at = 0;
  while (at < bytes.length) {
    if (state.skipCrlf > 0) {
      const skip = Math.min(state.skipCrlf, bytes.length - at);
      state.skipCrlf -= skip;
      at += skip;
      continue;
    }
    if (state.remaining > 0) {
      const take = Math.min(state.remaining, bytes.length - at);
      ranges.push(at, at + take);
      state.remaining -= take;
      at += take;
      if (state.remaining === 0) {
        state.remaining = -1;
        state.skipCrlf = 2;
      }
      continue;
    }
    const newline = bytes.indexOf(0x0a, at);
    if (newline === -1) {
      state.line += bytes.toString('latin1', at);
      if (state.line.length > 4096) return undefined;
      return 'more';
    }
    const line = (state.line + bytes.toString('latin1', at, newline)).replace(/\r$/, '');
    state.line = '';
    at = newline + 1;
    if (state.inTrailer) {
      if (line === '') return 'done';
      continue;
    }
    const size = /^([0-9a-fA-F]+)(?:;.*)?$/.exec(line.trim());
    if (size?.[1] === undefined) return undefined;
    const length = parseInt(size[1], 16);
    if (!Number.isSafeInteger(length)) return undefined;
    if (length === 0) state.inTrailer = true;
    else state.remaining = length;
  }
  return 'more';
}
