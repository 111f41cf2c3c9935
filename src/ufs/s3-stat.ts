/** The S3 connector's stat (HeadObject, or a prefix with keys under it), and an object or prefix as an entry. */
import { HeadObjectCommand } from '@aws-sdk/client-s3';
import { UfsError } from './errors.ts';
import { normaliseUfsPath } from './paths.ts';
import type { S3Bucket } from './s3-bucket.ts';
import type { UfsEntry } from './types.ts';

/**
 * stat is `HeadObject`; a 404 for a key that is a prefix of others is a directory. The root is a
 * directory once the bucket answers a listing of its prefix.
 */
export async function statObject(
  bucket: S3Bucket,
  path: string,
  options: { signal?: AbortSignal } = {},
): Promise<UfsEntry> {
  const relative = normaliseUfsPath(path);
  const what = `stat "${relative}" at ${bucket.description}`;
  if (relative === '') {
    await bucket.firstKeyUnder(bucket.location.prefix, options.signal);
    return directoryEntry('');
  }
  try {
    const head = await bucket.run(what, options.signal, (signal) =>
      bucket.client.send(
        new HeadObjectCommand({ Bucket: bucket.location.bucket, Key: bucket.key(relative) }),
        {
          abortSignal: signal,
        },
      ),
    );
    return objectEntry(relative, head.ContentLength, head.LastModified, head.ETag);
  } catch (error) {
    if (!(error instanceof UfsError) || error.code !== 'ERR_UFS_NOT_FOUND') throw error;
    const page = await bucket.firstKeyUnder(`${bucket.key(relative)}/`, options.signal);
    if ((page.KeyCount ?? 0) > 0) return directoryEntry(relative);
    throw error;
  }
}

/** An object as a listing or HeadObject shows it; the version is its ETag. */
export function objectEntry(
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

export function directoryEntry(path: string): UfsEntry {
  return { path, type: 'directory', sizeBytes: 0, mtimeMs: 0, version: '' };
}
