/**
 * The web connector's origin: the mount point and its credentials, the two transports (Http1Client
 * for the mount's own `http:` origin, undici for `https:` and other origins), redirects with their
 * bounds, and what a status or a network failure means. Listing, stat and reads go through here.
 */
import { Agent, type Dispatcher } from 'undici';
import { Http1Client, type HttpTimeouts } from '../http/index.ts';
import { redactUrlCredentials, scrubSecrets, SecretValue, type Logger } from '../lib/index.ts';
import { UfsError } from './errors.ts';
import { classifyNetworkError, transientError } from './failures.ts';
import { versionChanged, type Headers } from './http-version.ts';
import type { CutRead } from './resumable-read.ts';
import { withRetry, type ClassifiedFailure, type RetryPolicy } from './retry.ts';

/** Redirects followed per request (RFC 9110 §15.4 leaves the bound to the client). */
const MAX_REDIRECTS = 5;
const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);

export interface HttpUfsOptions {
  /** `http(s)://host[:port]/path`: the directory the mount serves. */
  mountPoint: string;
  logger: Logger;
  retry: RetryPolicy;
  timeouts: HttpTimeouts;
  /** HEAD requests in flight per listed directory. Default 8. */
  listConcurrency?: number;
  /**
   * Requests a listing sends per second at most, index pages and HEADs together, bursts of one
   * second's worth allowed (`tide.ufs.http.listRequestsPerSecond`). Default 1000: an origin whose
   * pages never end is walked at a bounded rate, not as fast as it answers.
   */
  listRequestsPerSecond?: number;
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

/** A response body of either transport: iterate it once, or dump or destroy it. */
export interface ResponseBody extends AsyncIterable<Uint8Array> {
  /** Reads the rest and throws it away (the connection stays for the next request). */
  dump(): Promise<void>;
  /** Drops the rest and the connection; quiet, safe to call twice. */
  destroy(): void;
}

/** A response of either transport, with the URL it came from after redirects. */
export interface Response {
  statusCode: number;
  headers: Headers;
  body: ResponseBody;
  url: URL;
}

/** The mount's origin and how to talk to it; see the file header. */
export class HttpOrigin {
  readonly description: string;
  /** The mount point: the directory URL, without credentials, query or fragment. */
  readonly base: URL;
  readonly logger: Logger;
  readonly retry: RetryPolicy;
  readonly #authorization: SecretValue | undefined;
  readonly #secrets: SecretValue[];
  readonly #crossOriginRedirects: boolean;
  readonly #allowLinkLocal: boolean;
  readonly #timeouts: HttpTimeouts;
  readonly #dispatcher: Dispatcher;
  readonly #ownsDispatcher: boolean;
  /** For the mount's own origin when it is `http:` (see HttpUfsOptions.transport). */
  readonly #http1: Http1Client | undefined;

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
    this.base = base;
    this.description = base.href;
    this.logger = options.logger.child({ ufs: this.description });
    this.retry = options.retry;
    this.#timeouts = options.timeouts;
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
    this.#http1 =
      base.protocol === 'http:' && (options.transport ?? 'http1') === 'http1'
        ? new Http1Client({
            origin: new URL(base.origin),
            connections: options.connectionsPerOrigin ?? 16,
            timeouts: options.timeouts,
          })
        : undefined;
  }

  /** Runs one operation under the retry policy and deadline; `what` names it in messages. */
  retrying<T>(
    what: string,
    signal: AbortSignal | undefined,
    attempt: (signal: AbortSignal) => Promise<T>,
  ): Promise<T> {
    return withRetry({
      policy: this.retry,
      what,
      signal,
      logger: this.logger,
      attempt,
      classify: (error) => this.classify(error, what),
    });
  }

  /** A read of `path` in progress, for resumeCutReads and recoverCutRead. */
  cutRead(what: string, path: string, signal: AbortSignal | undefined): CutRead {
    return {
      what,
      path,
      signal,
      retry: this.retry,
      logger: this.logger,
      classify: (error) => this.classify(error, what),
    };
  }

  /** A GET or HEAD with the redirects followed (within the bounds of the options). */
  async request(init: {
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
      if (this.#authorization !== undefined && url.origin === this.base.origin) {
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
      if (next.origin !== this.base.origin && !this.#crossOriginRedirects) {
        throw new UfsError(
          'ERR_UFS_REMOTE',
          `Cannot follow a redirect from ${this.base.origin} to another origin, ${next.origin} (set tide.ufs.http.crossOriginRedirects=true to allow it)`,
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
    if (this.#http1 !== undefined && url.origin === this.base.origin) {
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

  statusError(response: Response, what: string): UfsError {
    const status = response.statusCode;
    const text = `Cannot ${what}: the server answered ${status}`;
    if (status === 404 || status === 410) return new UfsError('ERR_UFS_NOT_FOUND', `${text} (nothing there)`);
    if (status === 401 || status === 403)
      return new UfsError('ERR_UFS_ACCESS_DENIED', `${text} (access denied)`);
    if (status === 412) return versionChanged(what);
    if (status === 429 || status >= 500) return transientError('ERR_UFS_REMOTE', text);
    return new UfsError('ERR_UFS_REMOTE', text);
  }

  classify(error: unknown, what: string): ClassifiedFailure {
    return classifyNetworkError(error, what, (text) => scrubSecrets(text, this.#secrets));
  }

  fileUrl(relative: string): URL {
    return new URL(relative.split('/').map(encodeURIComponent).join('/'), this.base);
  }

  dirUrl(relative: string): URL {
    return relative === '' ? this.base : new URL(`${this.fileUrl(relative).pathname}/`, this.base);
  }

  async close(): Promise<void> {
    this.#http1?.close();
    if (this.#ownsDispatcher) await this.#dispatcher.destroy();
  }
}

/** Reads a body to its end and drops it, so that the connection serves the next request. */
export async function discard(response: Response): Promise<void> {
  try {
    await response.body.dump();
  } catch {
    // A body that fails while being thrown away changes nothing.
  }
}

/** `body`, calling `settled` once when it ends, fails, is dumped or is destroyed. */
export function onSettled(body: ResponseBody, settled: () => void): ResponseBody {
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
