/** The shapes of the client's options, requests and answers, and the timeouts they share with undici. */
export interface HttpTimeouts {
  /** TCP (and TLS) connect. Default 10 s. */
  connectTimeoutMs: number;
  /** From request to response headers, per attempt. Default 30 s. */
  headersTimeoutMs: number;
  /** Longest pause between two chunks of a body. Default 30 s. */
  bodyIdleTimeoutMs: number;
}

export const DEFAULT_HTTP_TIMEOUTS: Readonly<HttpTimeouts> = Object.freeze({
  connectTimeoutMs: 10_000,
  headersTimeoutMs: 30_000,
  bodyIdleTimeoutMs: 30_000,
});

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
