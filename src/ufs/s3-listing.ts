/** The S3 connector's listing: ListObjectsV2 paging, common prefixes as directories, folder markers. */
import { UfsError } from './errors.ts';
import { normaliseUfsPath } from './paths.ts';
import type { S3Bucket } from './s3-bucket.ts';
import { directoryEntry, objectEntry, statObject } from './s3-stat.ts';
import type { ListOptions, UfsEntry } from './types.ts';

/**
 * Directories are common prefixes (`ListObjectsV2` with `Delimiter=/`); a recursive walk lists
 * without a delimiter and makes up the directories from the keys. Keys that end in `/` (folder
 * markers) are directories, never files.
 * @throws {UfsError} ERR_UFS_NOT_A_DIRECTORY when the path is a file
 */
export async function* listObjects(
  bucket: S3Bucket,
  path: string,
  options: ListOptions = {},
): AsyncIterable<UfsEntry> {
  const relative = normaliseUfsPath(path);
  const prefix = relative === '' ? bucket.location.prefix : `${bucket.key(relative)}/`;
  const recursive = options.recursive === true;
  const seenDirectories = new Set<string>();
  let token: string | undefined;
  let first = true;
  do {
    const page = await bucket.listPage({ prefix, token, delimiter: !recursive, signal: options.signal });
    if (first && relative !== '' && (page.KeyCount ?? 0) === 0) {
      // An empty listing: nothing there, or a file rather than a directory.
      const entry = await statObject(
        bucket,
        relative,
        options.signal === undefined ? {} : { signal: options.signal },
      );
      if (entry.type === 'file') {
        throw new UfsError(
          'ERR_UFS_NOT_A_DIRECTORY',
          `Cannot list "${relative}" at ${bucket.description} as it is a file`,
        );
      }
    }
    first = false;
    for (const common of page.CommonPrefixes ?? []) {
      const child = bucket.relative(common.Prefix);
      if (child !== undefined && child !== relative) yield directoryEntry(child);
    }
    for (const object of page.Contents ?? []) {
      const key = object.Key ?? '';
      const child = bucket.relative(key);
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
