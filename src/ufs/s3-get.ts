/**
 * GetObject without the AWS SDK: the request is signed here (SigV4, by @smithy/signature-v4, the
 * signer the SDK itself uses) and sent through Http1Client on `http:` endpoints or undici on
 * `https:` ones. The SDK's per-request middleware stack costs about a millisecond, its response
 * path wraps the body in further streams, and its transport reads into a fresh buffer per socket
 * read; on the read path of a cache worker, which moves every byte of a dataset, that is what bounds
 * throughput on a small machine (bench/ufs-read.ts). Listing and stat stay on the SDK, where the
 * cost per byte does not matter.
 *
 * The URL is the one the SDK would build: path style `<endpoint>/<bucket>/<key>`, or virtual-hosted
 * `<scheme>://<bucket>.<host>/<key>`; without an endpoint, AWS's regional one. Keys are escaped per
 * RFC 3986 segment by segment (S3 signs the path as sent: `uriEscapePath: false`).
 */
import { createHash, createHmac } from 'node:crypto';
import { SignatureV4 } from '@smithy/signature-v4';
import { Agent } from 'undici';
import { Http1Client, type HttpTimeouts } from '../http/index.ts';
import { revealedCredentials, type S3Location } from './s3-config.ts';

export interface S3GetRequest {
  key: string;
  /** Inclusive byte positions. */
  first: number;
  last: number;
  ifMatch: string | undefined;
  signal: AbortSignal;
  /** Where a 206 body may land on `http:` endpoints (Http1Request.into). */
  into?: Uint8Array | undefined;
}

export interface S3GetResponse {
  statusCode: number;
  headers: Readonly<Record<string, string | undefined>>;
  body: AsyncIterable<Uint8Array>;
  /** The rest of the body as text (error documents), up to `limitBytes`. */
  text(limitBytes: number): Promise<string>;
  /** Stops the body; safe to call after it ended. */
  destroy(): void;
}

export interface S3GetterOptions {
  location: S3Location;
  timeouts: HttpTimeouts;
  connections: number;
  /** `http1` needs an `http:` endpoint. Default: `http1` for `http:` endpoints, else `undici`. */
  transport?: 'http1' | 'undici';
}

/** Sends signed GetObject requests for one bucket; see the file header. */
export class S3Getter {
  readonly #location: S3Location;
  readonly #timeouts: HttpTimeouts;
  readonly #origin: URL;
  /** Path before the key: `/<bucket>/` in path style, `/` for virtual hosts (plus an endpoint's own path). */
  readonly #pathPrefix: string;
  readonly #signer: SignatureV4 | undefined;
  readonly #http1: Http1Client | undefined;
  readonly #undici: Agent | undefined;

  constructor(options: S3GetterOptions) {
    const { location } = options;
    this.#location = location;
    this.#timeouts = options.timeouts;
    const endpoint = new URL(location.endpoint ?? `https://s3.${location.region}.amazonaws.com`);
    // Dotted bucket names break the TLS name of a virtual host: the SDK goes path style for them too.
    const pathStyle =
      location.forcePathStyle || (endpoint.protocol === 'https:' && location.bucket.includes('.'));
    const endpointPath = endpoint.pathname.replace(/\/+$/, '');
    this.#origin = new URL(
      pathStyle ? endpoint.origin : `${endpoint.protocol}//${location.bucket}.${endpoint.host}`,
    );
    this.#pathPrefix = pathStyle ? `${endpointPath}/${escapeSegment(location.bucket)}/` : `${endpointPath}/`;
    const credentials = location.credentials;
    this.#signer =
      credentials === undefined
        ? undefined
        : new SignatureV4({
            service: 's3',
            region: location.region,
            sha256: NodeSha256,
            uriEscapePath: false,
            applyChecksum: false,
            credentials: revealedCredentials(credentials),
          });
    const transport = options.transport ?? (this.#origin.protocol === 'http:' ? 'http1' : 'undici');
    if (transport === 'http1') {
      this.#http1 = new Http1Client({
        origin: this.#origin,
        connections: options.connections,
        timeouts: options.timeouts,
      });
    } else {
      this.#undici = new Agent({
        connections: options.connections,
        keepAliveTimeout: 30_000,
        connect: { timeout: options.timeouts.connectTimeoutMs },
      });
    }
  }

  /** @throws transport errors (with Node, undici or ERR_HTTP1_* codes), or the signal's reason */
  async get(request: S3GetRequest): Promise<S3GetResponse> {
    const path = `${this.#pathPrefix}${request.key.split('/').map(escapeSegment).join('/')}`;
    const headers = await this.#sign(path, {
      range: `bytes=${request.first}-${request.last}`,
      ...(request.ifMatch === undefined ? {} : { 'if-match': request.ifMatch }),
    });
    if (this.#http1 !== undefined) {
      const response = await this.#http1.request({
        method: 'GET',
        path,
        headers,
        signal: request.signal,
        into: request.into,
      });
      return {
        statusCode: response.statusCode,
        headers: response.headers,
        body: response.body,
        text: (limitBytes) => response.body.text(limitBytes),
        destroy: () => {
          response.body.destroy();
        },
      };
    }
    const response = await (this.#undici as Agent).request({
      origin: this.#origin.origin,
      path,
      method: 'GET',
      headers,
      signal: request.signal,
      headersTimeout: this.#timeouts.headersTimeoutMs,
      bodyTimeout: this.#timeouts.bodyIdleTimeoutMs,
    });
    const flat: Record<string, string | undefined> = {};
    for (const [name, value] of Object.entries(response.headers)) {
      flat[name] = Array.isArray(value) ? value.join(', ') : value;
    }
    const body = response.body;
    return {
      statusCode: response.statusCode,
      headers: flat,
      body,
      text: async (limitBytes) => (await body.text()).slice(0, limitBytes),
      destroy: () => {
        // undici emits an 'error' for a body destroyed early, with nobody left to handle it.
        body.on('error', () => undefined);
        body.destroy();
      },
    };
  }

  async close(): Promise<void> {
    this.#http1?.close();
    await this.#undici?.destroy();
  }

  async #sign(path: string, extra: Record<string, string>): Promise<Record<string, string>> {
    const headers: Record<string, string> = {
      host: this.#origin.host,
      'x-amz-content-sha256': 'UNSIGNED-PAYLOAD',
      ...extra,
    };
    if (this.#signer === undefined) return headers;
    const signed = await this.#signer.sign({
      method: 'GET',
      protocol: this.#origin.protocol,
      hostname: this.#origin.hostname,
      ...(this.#origin.port === '' ? {} : { port: Number(this.#origin.port) }),
      path,
      query: {},
      headers,
    });
    return signed.headers;
  }

  get description(): string {
    return this.#location.description;
  }
}

/** RFC 3986: everything but unreserved characters escaped (encodeURIComponent leaves `!'()*`). */
function escapeSegment(segment: string): string {
  return encodeURIComponent(segment).replace(
    /[!'()*]/g,
    (char) => `%${char.charCodeAt(0).toString(16).toUpperCase()}`,
  );
}

/** The signer's hash interface over node:crypto (the SDK brings its own; this needs no package). */
type Digest = ReturnType<typeof createHash> | ReturnType<typeof createHmac>;

class NodeSha256 {
  #hash: Digest;
  readonly #secret: Uint8Array | string | undefined;

  constructor(secret?: Uint8Array | string | ArrayBuffer | ArrayBufferView) {
    this.#secret = secret === undefined ? undefined : toBytes(secret);
    this.#hash = this.#fresh();
  }

  update(data: Uint8Array | string | ArrayBuffer | ArrayBufferView): void {
    this.#hash.update(toBytes(data));
  }

  digest(): Promise<Uint8Array> {
    return Promise.resolve(new Uint8Array(this.#hash.digest()));
  }

  reset(): void {
    this.#hash = this.#fresh();
  }

  #fresh(): Digest {
    return this.#secret === undefined ? createHash('sha256') : createHmac('sha256', this.#secret);
  }
}

function toBytes(data: Uint8Array | string | ArrayBuffer | ArrayBufferView): Uint8Array | string {
  if (typeof data === 'string' || data instanceof Uint8Array) return data;
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}
