import type { Mount } from './dataset.ts';

/** URI schemes a Dataset mount may use, and the connector family behind each. */
export const SUPPORTED_SCHEMES = ['local', 'pvc', 'http', 'https', 's3', 'oss', 'cos'] as const;
export type MountScheme = (typeof SUPPORTED_SCHEMES)[number];

/** What a mount point must look like; also enforced by the API server through the generated CRD. */
export const MOUNT_POINT_PATTERN = `^(${SUPPORTED_SCHEMES.join('|')})://.+`;

/** Why a mount point cannot be used, or undefined when it can. */
export function mountPointProblem(mountPoint: string): string | undefined {
  const scheme = schemeOf(mountPoint);
  if (scheme === undefined)
    return `"${mountPoint}" has no scheme (use one of ${SUPPORTED_SCHEMES.join(', ')})`;
  if (!isSupportedScheme(scheme))
    return `unsupported scheme "${scheme}" (supported: ${SUPPORTED_SCHEMES.join(', ')})`;
  if (!new RegExp(MOUNT_POINT_PATTERN).test(mountPoint))
    return `"${mountPoint}" names no location after ${scheme}://`;
  return undefined;
}

/** The scheme of a mount point (`oss://b/p` → `oss`), or undefined when it has none. */
export function schemeOf(mountPoint: string): string | undefined {
  const match = /^([a-zA-Z][a-zA-Z0-9+.-]*):\/\//.exec(mountPoint);
  return match?.[1]?.toLowerCase();
}

export function isSupportedScheme(scheme: string): scheme is MountScheme {
  return (SUPPORTED_SCHEMES as readonly string[]).includes(scheme);
}

/**
 * Where a mount appears in the dataset's unified namespace. Fluid's rule: `path`, else `/<name>`.
 * Tide adds one convenience: a dataset with a single unnamed mount shows it at `/`.
 */
export function namespacePathOf(mount: Mount, mountCount: number): string | undefined {
  if (mount.path !== undefined && mount.path !== '') return normalisePath(mount.path);
  if (mount.name !== undefined && mount.name !== '') return `/${mount.name}`;
  return mountCount === 1 ? '/' : undefined;
}

function normalisePath(path: string): string {
  const trimmed = path.replace(/\/+$/, '');
  return trimmed === '' ? '/' : trimmed;
}
