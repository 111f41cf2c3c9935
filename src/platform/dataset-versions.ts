/**
 * The file versions a DataLoad saw, on both platforms: the local platform writes them to a file the
 * mount follows, the Kubernetes loader to a ConfigMap the FUSE pods watch. A mount compares them
 * with the versions the kernel has seen and invalidates what changed.
 */
import { gunzipSync, gzipSync } from 'node:zlib';

/** The file versions a DataLoad saw, for the mount to invalidate what changed. */
export interface VersionsFile {
  /** Dataset paths that were listed in full. */
  targets: string[];
  /** `[dataset path without leading slash, version]` of every file listed. */
  entries: [string, string][];
  /**
   * The entries did not fit where they travel (a ConfigMap holds 1 MiB): `entries` is empty, and
   * every known path under the targets counts as changed.
   */
  truncated?: boolean;
}

/**
 * Known paths whose version differs from a load's listing, or that the listing of their target
 * lacks; and paths the load listed that are new in a directory the mount holds a listing of (so
 * that the listing, and the kernel's negative entry, are dropped).
 */
export function changedPaths(
  file: VersionsFile,
  known: ReadonlyMap<string, string>,
  isListed: (dir: string) => boolean = () => false,
): string[] {
  const listed = new Map(file.entries.map(([path, version]) => [`/${path}`, version]));
  const targets = file.targets.map((target) => (target === '/' ? '/' : `${target.replace(/\/+$/, '')}/`));
  const changed: string[] = [];
  for (const [path, version] of known) {
    const now = listed.get(path);
    if (
      now !== undefined
        ? now !== version
        : targets.some((target) => path.startsWith(target) || `${path}/` === target)
    ) {
      changed.push(path);
    }
  }
  for (const path of listed.keys()) {
    if (!known.has(path) && isListed(path.slice(0, Math.max(1, path.lastIndexOf('/'))))) changed.push(path);
  }
  return changed;
}

/** The key of the versions in the ConfigMap's `binaryData`. */
export const VERSIONS_KEY = 'versions.json.gz';

/** Room for the gzipped versions in a ConfigMap (1 MiB with its metadata, base64 in etcd). */
export const MAX_ENCODED_VERSIONS_BYTES = 700 * 1024;

/**
 * The versions as a ConfigMap's `binaryData` value: gzipped JSON, base64. When that exceeds
 * `maxBytes`, the targets alone with `truncated`, so that a mount invalidates all it knows under them.
 */
export function encodeVersions(file: VersionsFile, maxBytes = MAX_ENCODED_VERSIONS_BYTES): string {
  const full = gzipSync(JSON.stringify(file)).toString('base64');
  if (full.length <= maxBytes) return full;
  return gzipSync(JSON.stringify({ targets: file.targets, entries: [], truncated: true })).toString('base64');
}

/** The inverse of `encodeVersions`; undefined for anything that is not such a value. */
export function decodeVersions(value: string): VersionsFile | undefined {
  try {
    const file = JSON.parse(
      gunzipSync(Buffer.from(value, 'base64')).toString('utf8'),
    ) as Partial<VersionsFile>;
    if (!Array.isArray(file.targets) || !Array.isArray(file.entries)) return undefined;
    return {
      targets: file.targets,
      entries: file.entries,
      ...(file.truncated === true ? { truncated: true } : {}),
    };
  } catch {
    return undefined;
  }
}
