import { throwIfAborted } from '../lib/index.ts';
import { abortedError } from './abort.ts';
import { checkRange, normaliseUfsPath } from './paths.ts';
import { S3Bucket, type S3UfsOptions } from './s3-bucket.ts';
import { listObjects } from './s3-listing.ts';
import { objectStream, openObject } from './s3-ranged-read.ts';
import { statObject } from './s3-stat.ts';
import type { ByteRange, ListOptions, ReadOptions, UfsEntry, UnderFileSystem } from './types.ts';

export type { S3UfsOptions } from './s3-bucket.ts';

/**
 * An S3-compatible bucket prefix as an under file system: `s3://` (AWS and any S3 API), `oss://`
 * (Alibaba OSS through its S3-compatible API), `cos://` (Tencent COS likewise). This class joins
 * the parts, one file each:
 *
 * - list (s3-listing.ts): directories are common prefixes (`ListObjectsV2` with `Delimiter=/`); a
 *   recursive walk lists without a delimiter and makes up the directories from the keys. Keys that
 *   end in `/` (folder markers) are directories, never files.
 * - stat (s3-stat.ts): `HeadObject`; a 404 for a key that is a prefix of others is a directory.
 * - read (s3-ranged-read.ts): `GetObject` with `Range` and `IfMatch` (the version is the ETag),
 *   resumed after a cut body from the byte where it stopped with the ETag it started with.
 * - failures (s3-failures.ts): the store's error codes and statuses as UfsError codes, retryable
 *   or not.
 * - bucket (s3-bucket.ts): signing is SigV4 by the AWS SDK (GetObject by s3-get.ts, without the
 *   SDK); the SDK's own retries are off so that the retry policy and deadline here apply to every
 *   connector alike.
 */
export class S3Ufs implements UnderFileSystem {
  readonly description: string;
  readonly #bucket: S3Bucket;

  constructor(options: S3UfsOptions) {
    this.#bucket = new S3Bucket(options);
    this.description = this.#bucket.description;
  }

  list(path: string, options: ListOptions = {}): AsyncIterable<UfsEntry> {
    return listObjects(this.#bucket, path, options);
  }

  async stat(path: string, options: { signal?: AbortSignal } = {}): Promise<UfsEntry> {
    return statObject(this.#bucket, path, options);
  }

  async read(path: string, range: ByteRange, options: ReadOptions = {}): Promise<AsyncIterable<Uint8Array>> {
    checkRange(range);
    const relative = normaliseUfsPath(path);
    throwIfAborted(options.signal, abortedError(`read of "${relative}" at ${this.description}`));
    if (range.length === 0) return emptyStream();
    const request = { relative, range, version: options.version, signal: options.signal, into: options.into };
    const first = await openObject(this.#bucket, request, range.offset);
    if (first === undefined) return emptyStream();
    return objectStream(this.#bucket, request, first);
  }

  async check(options: { signal?: AbortSignal } = {}): Promise<void> {
    await this.stat('', options);
  }

  async close(): Promise<void> {
    await this.#bucket.close();
  }
}

async function* emptyStream(): AsyncIterable<Uint8Array> {
  // Nothing: the range starts at or after the end of the object.
}
