/**
 * One connection to the origin, made for moving large response bodies into memory with as little
 * CPU per byte as Node allows. Node sockets in their usual mode allocate a fresh 64 KiB buffer for
 * every read; at a gigabyte per second that allocation and the garbage it makes cost more CPU than
 * the copy from the kernel (bench/ufs-read.ts: undici, which reads that way, needs about 1 s of CPU
 * per GiB on loopback; this client about 0.3 s). Here the socket reads with `onread` straight into
 * the buffers that are handed to the caller: the bytes of a body are copied once, by the kernel,
 * and each chunk is a view of a segment that is never reused, so the caller may keep it. A caller
 * that has a buffer for the body already (a cache worker filling a block) passes it as `into`, and
 * a 206 body that fits is read straight into it: no allocation at all per read, and nothing for the
 * caller to copy.
 */
import { connect, type Socket } from 'node:net';
import { hasCode } from '../lib/index.ts';
import { Http1Error, isEarlyEnd, StaleConnectionError } from './errors.ts';
import { decodeChunked, decodeChunkedRanges, framingOf, parseHead, type BodyFraming } from './framing.ts';
import type { Http1Body, Http1Request, Http1Response, HttpTimeouts } from './types.ts';

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

/** One keep-alive connection: sends a request, reads its answer, then goes back to the pool. */
export class Connection {
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
