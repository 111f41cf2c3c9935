/**
 * The pool: up to `connections` keep-alive connections to one `http:` origin, one request at a
 * time on each; further requests wait for a connection to come back.
 */
import { Http1Error, StaleConnectionError } from './errors.ts';
import { Connection } from './connection.ts';
import { requestHead } from './framing.ts';
import type { Http1ClientOptions, Http1Request, Http1Response, HttpTimeouts } from './types.ts';

/** Connections to one `http:` origin; see index.ts for what it speaks. */
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
        return await connection.send(request, requestHead(this.#origin, request));
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
