import { Agent } from 'undici';
import {
  HeadObjectCommand,
  ListObjectsV2Command,
  S3Client,
  S3ServiceException,
  type ListObjectsV2CommandOutput,
} from '@aws-sdk/client-s3';
import type { HttpTimeouts } from '../http/index.ts';
import { scrubSecrets, throwIfAborted, type Logger } from '../lib/index.ts';
import { abortedError } from './abort.ts';
import { UfsError } from './errors.ts';
import { classifyNetworkError, scrubbedCause, transientError } from './failures.ts';
import { checkRange, normaliseUfsPath } from './paths.ts';
import { openPastDeadline, resumeCutReads } from './resumable-read.ts';
import { withRetry, type ClassifiedFailure, type RetryPolicy } from './retry.ts';
import { revealedCredentials, type S3Location } from './s3-config.ts';
import { S3Getter, type S3GetResponse } from './s3-get.ts';
import { UndiciRequestHandler } from './undici-request-handler.ts';
import type { ByteRange, ListOptions, ReadOptions, UfsEntry, UnderFileSystem } from './types.ts';

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

/** S3 error codes (the `Code` of an error response, the SDK's error `name`) by meaning. */
const ACCESS_DENIED = new Set([
  'AccessDenied',
  'InvalidAccessKeyId',
  'SignatureDoesNotMatch',
  'InvalidToken',
  'ExpiredToken',
  'InvalidSecurity',
  'AllAccessDisabled',
  'AccountProblem',
]);
const NOT_FOUND = new Set(['NoSuchKey', 'NotFound', 'NoSuchVersion']);
const RETRYABLE = new Set([
  'SlowDown',
  'ServiceUnavailable',
  'InternalError',
  'RequestTimeout',
  'RequestTimeTooSkewed',
  'Throttling',
  'ThrottlingException',
  'RequestLimitExceeded',
  'TooManyRequests',
]);
/** The bucket is elsewhere or the region is wrong: a configuration problem, not a transient one. */
const WRONG_REGION = new Set([
  'PermanentRedirect',
  'AuthorizationHeaderMalformed',
  'IllegalLocationConstraintException',
]);

/**
 * An S3-compatible bucket prefix as an under file system: `s3://` (AWS and any S3 API), `oss://`
 * (Alibaba OSS through its S3-compatible API), `cos://` (Tencent COS likewise). Signing is SigV4 by
 * the AWS SDK; the SDK's own retries are off so that the retry policy and deadline here apply to
 * every connector alike.
 *
 * - Directories are common prefixes (`ListObjectsV2` with `Delimiter=/`); a recursive walk lists
 *   without a delimiter and makes up the directories from the keys. Keys that end in `/` (folder
 *   markers) are directories, never files.
 * - stat is `HeadObject`; a 404 for a key that is a prefix of others is a directory.
 * - read is `GetObject` with `Range` and `IfMatch` (the version is the ETag), resumed after a cut
 *   body from the byte where it stopped with the ETag it started with.
 */
export class S3Ufs implements UnderFileSystem {
  readonly description: string;
  readonly #location: S3Location;
  readonly #client: S3Client;
  readonly #logger: Logger;
  readonly #retry: RetryPolicy;
  readonly #dispatcher: Agent;
  readonly #getter: S3Getter;

  constructor(options: S3UfsOptions) {
    const { location } = options;
    this.#location = location;
    this.description = location.description;
    this.#logger = options.logger.child({ ufs: this.description });
    this.#retry = options.retry;
    const scrub = (args: unknown[]): string => this.#scrub(args.map((arg) => String(arg)).join(' '));
    this.#dispatcher = new Agent({
      connections: options.maxSockets ?? 64,
      keepAliveTimeout: 30_000,
      connect: { timeout: options.timeouts.connectTimeoutMs },
    });
    this.#getter = new S3Getter({
      location,
      timeouts: options.timeouts,
      connections: options.maxSockets ?? 64,
      ...(options.readTransport === undefined ? {} : { transport: options.readTransport }),
    });
    const credentials = location.credentials;
    this.#client = new S3Client({
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
          this.#logger.warn(scrub(args));
        },
        error: (...args: unknown[]) => {
          this.#logger.error(scrub(args));
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

  async *list(path: string, options: ListOptions = {}): AsyncIterable<UfsEntry> {
    const relative = normaliseUfsPath(path);
    const prefix = relative === '' ? this.#location.prefix : `${this.#key(relative)}/`;
    const recursive = options.recursive === true;
    const seenDirectories = new Set<string>();
    let token: string | undefined;
    let first = true;
    do {
      const page = await this.#listPage({ prefix, token, delimiter: !recursive, signal: options.signal });
      if (first && relative !== '' && (page.KeyCount ?? 0) === 0) {
        // An empty listing: nothing there, or a file rather than a directory.
        const entry = await this.stat(
          relative,
          options.signal === undefined ? {} : { signal: options.signal },
        );
        if (entry.type === 'file') {
          throw new UfsError(
            'ERR_UFS_NOT_A_DIRECTORY',
            `Cannot list "${relative}" at ${this.description} as it is a file`,
          );
        }
      }
      first = false;
      for (const common of page.CommonPrefixes ?? []) {
        const child = this.#relative(common.Prefix);
        if (child !== undefined && child !== relative) yield directoryEntry(child);
      }
      for (const object of page.Contents ?? []) {
        const key = object.Key ?? '';
        const child = this.#relative(key);
        if (child === undefined) continue;
        if (recursive) {
          // Directories implied by the key, each once.
          for (
            let slash = child.indexOf('/', relative.length + 1);
            slash !== -1;
            slash = child.indexOf('/', slash + 1)
          ) {
            const directory = child.slice(0, slash);
            if (!seenDirectories.has(directory)) {
              seenDirectories.add(directory);
              yield directoryEntry(directory);
            }
          }
        }
        if (key.endsWith('/')) {
          // A folder marker: its own prefix (the listed directory), or a directory also listed as a
          // common prefix (non-recursive) or already implied by its deeper keys.
          if (child !== relative && recursive && !seenDirectories.has(child)) {
            seenDirectories.add(child);
            yield directoryEntry(child);
          }
          continue;
        }
        yield objectEntry(child, object.Size, object.LastModified, object.ETag);
      }
      token = page.IsTruncated === true ? page.NextContinuationToken : undefined;
    } while (token !== undefined);
  }

  async stat(path: string, options: { signal?: AbortSignal } = {}): Promise<UfsEntry> {
    const relative = normaliseUfsPath(path);
    const what = `stat "${relative}" at ${this.description}`;
    if (relative === '') {
      await this.#firstKeyUnder(this.#location.prefix, options.signal);
      return directoryEntry('');
    }
    try {
      const head = await this.#run(what, options.signal, (signal) =>
        this.#client.send(
          new HeadObjectCommand({ Bucket: this.#location.bucket, Key: this.#key(relative) }),
          {
            abortSignal: signal,
          },
        ),
      );
      return objectEntry(relative, head.ContentLength, head.LastModified, head.ETag);
    } catch (error) {
      if (!(error instanceof UfsError) || error.code !== 'ERR_UFS_NOT_FOUND') throw error;
      const page = await this.#firstKeyUnder(`${this.#key(relative)}/`, options.signal);
      if ((page.KeyCount ?? 0) > 0) return directoryEntry(relative);
      throw error;
    }
  }

  async read(path: string, range: ByteRange, options: ReadOptions = {}): Promise<AsyncIterable<Uint8Array>> {
    checkRange(range);
    const relative = normaliseUfsPath(path);
    throwIfAborted(options.signal, abortedError(`read of "${relative}" at ${this.description}`));
    if (range.length === 0) return emptyStream();
    const request = { relative, range, version: options.version, signal: options.signal, into: options.into };
    const first = await this.#open(request, range.offset);
    if (first === undefined) return emptyStream();
    return this.#stream(request, first);
  }

  async check(options: { signal?: AbortSignal } = {}): Promise<void> {
    await this.stat('', options);
  }

  async close(): Promise<void> {
    this.#client.destroy();
    await Promise.all([this.#dispatcher.destroy(), this.#getter.close()]);
  }

  // ---- internals -----------------------------------------------------------------------------

  async #listPage(request: {
    prefix: string;
    token: string | undefined;
    delimiter: boolean;
    maxKeys?: number;
    signal: AbortSignal | undefined;
  }): Promise<ListObjectsV2CommandOutput> {
    const what = `list "${request.prefix}" in ${this.description}`;
    return this.#run(what, request.signal, (signal) =>
      this.#client.send(
        new ListObjectsV2Command({
          Bucket: this.#location.bucket,
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
  async #firstKeyUnder(prefix: string, signal: AbortSignal | undefined): Promise<ListObjectsV2CommandOutput> {
    return this.#listPage({ prefix, token: undefined, delimiter: true, maxKeys: 1, signal });
  }

  /** GetObject from `from` to the end of the request's range; undefined past the end of the object. */
  async #open(request: ReadRequest, from: number): Promise<Opened | undefined> {
    const what = `read "${request.relative}" at ${this.description}`;
    const last = request.range.offset + request.range.length - 1;
    return withRetry({
      policy: this.#retry,
      what,
      signal: request.signal,
      logger: this.#logger,
      classify: (error) => this.#classify(error, what),
      attempt: async (phase) => {
        const { opened: response, release: unhook } = await openPastDeadline(
          phase,
          request.signal,
          (signal) =>
            this.#getter.get({
              key: this.#key(request.relative),
              first: from,
              last,
              ifMatch: request.version === undefined || request.version === '' ? undefined : request.version,
              signal,
              into: request.into?.subarray(from - request.range.offset),
            }),
        );
        const fail = (error: unknown): never => {
          unhook();
          response.destroy();
          throw error;
        };
        const { statusCode, headers } = response;
        if (statusCode !== 200 && statusCode !== 206) {
          // The error document names the S3 code (RFC: the S3 API's "Error responses").
          const text = await response.text(64 * 1024).catch(() => '');
          const code = /<Code>([^<]*)<\/Code>/.exec(text)?.[1];
          if (statusCode === 416 || code === 'InvalidRange') {
            unhook();
            return undefined;
          }
          return fail(new S3AnswerError(code, statusCode));
        }
        const version = headers.etag ?? '';
        if (request.version !== undefined && version !== request.version) return fail(changed(what));
        // A store that ignores Range answers 200 with the whole object: skip to `from` ourselves.
        const start = /^bytes (\d+)-/.exec(headers['content-range'] ?? '')?.[1];
        const skipBytes = start === undefined ? from : Number(start) === from ? 0 : NaN;
        return { response, version, skipBytes, unhook };
      },
    });
  }

  /** The object's bytes in the request's range, resumed where the network cut them, for the same ETag. */
  #stream(request: ReadRequest, first: Opened): AsyncIterable<Uint8Array> {
    const what = `read "${request.relative}" at ${this.description}`;
    const end = request.range.offset + request.range.length;
    const pinned = { ...request, version: first.version };
    return resumeCutReads<Opened | undefined>({
      read: {
        what,
        path: request.relative,
        signal: request.signal,
        retry: this.#retry,
        logger: this.#logger,
        classify: (error) => this.#classify(error, what),
      },
      first,
      start: request.range.offset,
      chunksOf: (opened, position) => objectChunks(opened, position, end, what),
      reopen: (position) => this.#open(pinned, position),
      close: (opened) => {
        opened?.response.destroy();
        opened?.unhook();
      },
    });
  }

  /** Runs one SDK call under the retry policy. */
  async #run<T>(
    what: string,
    signal: AbortSignal | undefined,
    call: (signal: AbortSignal) => Promise<T>,
  ): Promise<T> {
    return withRetry({
      policy: this.#retry,
      what,
      signal,
      logger: this.#logger,
      attempt: call,
      classify: (error) => this.#classify(error, what),
    });
  }

  #classify(error: unknown, what: string): ClassifiedFailure {
    if (error instanceof UfsError) return classifyNetworkError(error, what, (text) => this.#scrub(text));
    const code = error instanceof S3AnswerError ? error.s3Code : s3CodeOf(error);
    const status =
      error instanceof S3AnswerError
        ? error.statusCode
        : error instanceof S3ServiceException
          ? error.$metadata.httpStatusCode
          : undefined;
    if (code === undefined && status === undefined) {
      return classifyNetworkError(error, what, (text) => this.#scrub(text));
    }
    const detail = this.#scrub(`${code ?? 'HTTP'} ${status ?? ''}`.trim());
    const options = { cause: scrubbedCause(error, (text) => this.#scrub(text)) };
    const bucket = this.#location.bucket;
    if (code === 'NoSuchBucket') {
      return {
        error: new UfsError(
          'ERR_UFS_BUCKET_NOT_FOUND',
          `Cannot ${what}: bucket "${bucket}" does not exist`,
          options,
        ),
        retryable: false,
      };
    }
    if ((code !== undefined && ACCESS_DENIED.has(code)) || status === 401 || status === 403) {
      return {
        error: new UfsError(
          'ERR_UFS_ACCESS_DENIED',
          `Cannot ${what}: access denied (${detail}); check the credentials`,
          options,
        ),
        retryable: false,
      };
    }
    if (code === 'PreconditionFailed' || status === 412) return { error: changed(what), retryable: false };
    if ((code !== undefined && NOT_FOUND.has(code)) || status === 404) {
      return {
        error: new UfsError('ERR_UFS_NOT_FOUND', `Cannot ${what}: nothing there`, options),
        retryable: false,
      };
    }
    if (code !== undefined && WRONG_REGION.has(code)) {
      return {
        error: new UfsError(
          'ERR_UFS_BAD_CONFIG',
          `Cannot ${what}: the endpoint or region does not match the bucket (${detail}); region is "${this.#location.region}"`,
          options,
        ),
        retryable: false,
      };
    }
    if (
      (code !== undefined && RETRYABLE.has(code)) ||
      status === 429 ||
      (status !== undefined && status >= 500)
    ) {
      return {
        error: transientError('ERR_UFS_REMOTE', `Cannot ${what}: the store answered ${detail}`, options),
        retryable: true,
      };
    }
    return {
      error: new UfsError('ERR_UFS_REMOTE', `Cannot ${what}: the store answered ${detail}`, options),
      retryable: false,
    };
  }

  #scrub(text: string): string {
    return scrubSecrets(text, this.#location.secrets);
  }

  #key(relative: string): string {
    return relative === '' ? this.#location.prefix.replace(/\/$/, '') : `${this.#location.prefix}${relative}`;
  }

  /** The connector path of a key or common prefix; undefined for keys that are no valid path. */
  #relative(key: string | undefined): string | undefined {
    if (key?.startsWith(this.#location.prefix) !== true) return undefined;
    const rest = key.slice(this.#location.prefix.length).replace(/\/$/, '');
    if (rest === '') return undefined;
    try {
      // Keys with empty, "." or ".." segments cannot be addressed as paths; they are left out.
      return normaliseUfsPath(rest) === rest ? rest : undefined;
    } catch {
      return undefined;
    }
  }
}

interface ReadRequest {
  relative: string;
  range: ByteRange;
  version: string | undefined;
  signal: AbortSignal | undefined;
  into: Uint8Array | undefined;
}

interface Opened {
  response: S3GetResponse;
  /** Detaches the caller's signal from the request. */
  unhook: () => void;
  version: string;
  /** Bytes to drop from the body's start: non-zero when the store ignored the range; NaN when it answered another one. */
  skipBytes: number;
}

/** The S3 error code of an SDK error (`NoSuchBucket`, `SlowDown`…), also for HEAD errors without a body. */
function s3CodeOf(error: unknown): string | undefined {
  if (error instanceof S3ServiceException) {
    const code = (error as { Code?: unknown }).Code;
    if (typeof code === 'string') return code;
    return error.name === 'Unknown' || error.name === '' ? undefined : error.name;
  }
  return undefined;
}

/** An object as a listing or HeadObject shows it; the version is its ETag. */
function objectEntry(
  path: string,
  sizeBytes: number | undefined,
  lastModified: Date | undefined,
  etag: string | undefined,
): UfsEntry {
  return {
    path,
    type: 'file',
    sizeBytes: sizeBytes ?? 0,
    mtimeMs: lastModified?.getTime() ?? 0,
    version: etag ?? '',
  };
}

function directoryEntry(path: string): UfsEntry {
  return { path, type: 'directory', sizeBytes: 0, mtimeMs: 0, version: '' };
}

function changed(what: string): UfsError {
  return new UfsError('ERR_UFS_VERSION_CHANGED', `Cannot ${what} as the object changed since it was listed`);
}

/** A GetObject answered with an error status (the SDK's S3ServiceException, for the direct path). */
class S3AnswerError extends Error {
  readonly s3Code: string | undefined;
  readonly statusCode: number;
  constructor(s3Code: string | undefined, statusCode: number) {
    super(`the store answered ${s3Code ?? 'HTTP'} ${statusCode}`);
    this.name = 'S3AnswerError';
    this.s3Code = s3Code;
    this.statusCode = statusCode;
  }
}

/**
 * The bytes of one opened GetObject from `position` to `end`: the head of a whole object that the
 * store sent for a range is dropped, and nothing past `end` is given. Nothing for undefined (the
 * range starts past the end of the object).
 * @throws {UfsError} ERR_UFS_REMOTE when the store answered another range
 */
async function* objectChunks(
  opened: Opened | undefined,
  position: number,
  end: number,
  what: string,
): AsyncIterable<Uint8Array> {
  if (opened === undefined) return;
  let skip = opened.skipBytes;
  if (Number.isNaN(skip))
    throw new UfsError('ERR_UFS_REMOTE', `Cannot ${what}: the store answered another range`);
  let at = position;
  for await (const raw of opened.response.body) {
    let chunk: Uint8Array = raw;
    if (skip > 0) {
      const dropped = Math.min(skip, chunk.length);
      skip -= dropped;
      chunk = chunk.subarray(dropped);
    }
    if (chunk.length > end - at) chunk = chunk.subarray(0, end - at);
    if (chunk.length === 0) {
      if (at >= end) return;
      continue;
    }
    at += chunk.length;
    yield chunk;
    if (at >= end) return;
  }
  // The transports themselves fail a body shorter than its Content-Length.
}

async function* emptyStream(): AsyncIterable<Uint8Array> {
  // Nothing: the range starts at or after the end of the object.
}
