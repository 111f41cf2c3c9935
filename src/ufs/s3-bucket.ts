/** The S3 connector's bucket: the SDK client and its signing, the direct GetObject path, keys ↔ paths, retries. */
import { Agent } from 'undici';
import { ListObjectsV2Command, S3Client, type ListObjectsV2CommandOutput } from '@aws-sdk/client-s3';
import type { HttpTimeouts } from '../http/index.ts';
import { scrubSecrets, type Logger } from '../lib/index.ts';
import { normaliseUfsPath } from './paths.ts';
import { withRetry, type ClassifiedFailure, type RetryPolicy } from './retry.ts';
import { revealedCredentials, type S3Location } from './s3-config.ts';
import { classifyS3Failure } from './s3-failures.ts';
import { S3Getter } from './s3-get.ts';
import { UndiciRequestHandler } from './undici-request-handler.ts';

export interface S3UfsOptions {
  location: S3Location;
  logger: Logger;
  retry: RetryPolicy;
  timeouts: HttpTimeouts;
  /** Keep-alive connections to the endpoint. Default 64. */
  maxSockets?: number;
  /** How GetObject travels; see S3Getter. Default: Http1Client on `http:` endpoints, else undici. */
  readTransport?: 'http1' | 'undici';
}

/**
 * One bucket prefix and the ways to it: the AWS SDK client (SigV4 signing, or unsigned requests for
 * public buckets) for listing and HeadObject, S3Getter for GetObject. The SDK's own retries are off
 * so that the retry policy and deadline here apply to every connector alike. Listing, stat and reads
 * go through here.
 */
export class S3Bucket {
  readonly description: string;
  readonly location: S3Location;
  readonly client: S3Client;
  readonly logger: Logger;
  readonly retry: RetryPolicy;
  readonly getter: S3Getter;
  readonly #dispatcher: Agent;

  constructor(options: S3UfsOptions) {
    const { location } = options;
    this.location = location;
    this.description = location.description;
    this.logger = options.logger.child({ ufs: this.description });
    this.retry = options.retry;
    const scrub = (args: unknown[]): string => this.scrub(args.map((arg) => String(arg)).join(' '));
    this.#dispatcher = new Agent({
      connections: options.maxSockets ?? 64,
      keepAliveTimeout: 30_000,
      connect: { timeout: options.timeouts.connectTimeoutMs },
    });
    this.getter = new S3Getter({
      location,
      timeouts: options.timeouts,
      connections: options.maxSockets ?? 64,
      ...(options.readTransport === undefined ? {} : { transport: options.readTransport }),
    });
    const credentials = location.credentials;
    this.client = new S3Client({
      region: location.region,
      ...(location.endpoint === undefined ? {} : { endpoint: location.endpoint }),
      forcePathStyle: location.forcePathStyle,
      maxAttempts: 1,
      // Checksums of whole objects do not apply to ranges, and not every S3-compatible store has them.
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      requestHandler: new UndiciRequestHandler(this.#dispatcher, options.timeouts),
      logger: {
        debug: () => undefined,
        info: () => undefined,
        warn: (...args: unknown[]) => {
          this.logger.warn(scrub(args));
        },
        error: (...args: unknown[]) => {
          this.logger.error(scrub(args));
        },
      },
      ...(credentials === undefined
        ? // No credentials: unsigned requests for public buckets, and never the SDK's default
          // provider chain, which would read the environment and probe instance metadata.
          {
            credentials: { accessKeyId: '', secretAccessKey: '' },
            signer: { sign: (request) => Promise.resolve(request) },
          }
        : {
            credentials: revealedCredentials(credentials),
          }),
    });
  }

  /** Runs one SDK call under the retry policy. */
  async run<T>(
    what: string,
    signal: AbortSignal | undefined,
    call: (signal: AbortSignal) => Promise<T>,
  ): Promise<T> {
    return withRetry({
      policy: this.retry,
      what,
      signal,
      logger: this.logger,
      attempt: call,
      classify: (error) => this.classify(error, what),
    });
  }

  classify(error: unknown, what: string): ClassifiedFailure {
    return classifyS3Failure(error, what, this.location, (text) => this.scrub(text));
  }

  scrub(text: string): string {
    return scrubSecrets(text, this.location.secrets);
  }

  /** The key of a connector path; the prefix itself (without its slash) for the root. */
  key(relative: string): string {
    return relative === '' ? this.location.prefix.replace(/\/$/, '') : `${this.location.prefix}${relative}`;
  }

  /** The connector path of a key or common prefix; undefined for keys that are no valid path. */
  relative(key: string | undefined): string | undefined {
    if (key?.startsWith(this.location.prefix) !== true) return undefined;
    const rest = key.slice(this.location.prefix.length).replace(/\/$/, '');
    if (rest === '') return undefined;
    try {
      // Keys with empty, "." or ".." segments cannot be addressed as paths; they are left out.
      return normaliseUfsPath(rest) === rest ? rest : undefined;
    } catch {
      return undefined;
    }
  }

  /** One page of ListObjectsV2 under `prefix`, with `Delimiter=/` unless the walk is recursive. */
  async listPage(request: {
    prefix: string;
    token: string | undefined;
    delimiter: boolean;
    maxKeys?: number;
    signal: AbortSignal | undefined;
  }): Promise<ListObjectsV2CommandOutput> {
    const what = `list "${request.prefix}" in ${this.description}`;
    return this.run(what, request.signal, (signal) =>
      this.client.send(
        new ListObjectsV2Command({
          Bucket: this.location.bucket,
          Prefix: request.prefix,
          ...(request.delimiter ? { Delimiter: '/' } : {}),
          ...(request.token === undefined ? {} : { ContinuationToken: request.token }),
          ...(request.maxKeys === undefined ? {} : { MaxKeys: request.maxKeys }),
        }),
        { abortSignal: signal },
      ),
    );
  }

  /** One key or common prefix under `prefix`: whether it exists, and that the bucket answers. */
  async firstKeyUnder(prefix: string, signal: AbortSignal | undefined): Promise<ListObjectsV2CommandOutput> {
    return this.listPage({ prefix, token: undefined, delimiter: true, maxKeys: 1, signal });
  }

  async close(): Promise<void> {
    this.client.destroy();
    await Promise.all([this.#dispatcher.destroy(), this.getter.close()]);
  }
}
