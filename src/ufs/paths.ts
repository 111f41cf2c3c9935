/**
 * Paths inside a connector: relative to its root, `/`-separated, no leading or trailing slash, `''`
 * for the root. Callers may pass a leading slash; `.` and `..` segments are refused so that no
 * path escapes the mount's root.
 */
export function normaliseUfsPath(path: string): string {
  const segments = path.split('/').filter((segment) => segment !== '');
  for (const segment of segments) {
    if (segment === '.' || segment === '..') {
      throw new TypeError(`Cannot use the path "${path}" as it has a "${segment}" segment`);
    }
    if (segment.includes('\0')) throw new TypeError('Cannot use a path that contains a NUL byte');
  }
  return segments.join('/');
}

/** `a/b` + `c` → `a/b/c`; `''` + `c` → `c`. */
export function joinUfsPath(parent: string, name: string): string {
  return parent === '' ? name : `${parent}/${name}`;
}

/** The last segment of a normalised path. */
export function baseNameOf(path: string): string {
  const slash = path.lastIndexOf('/');
  return slash === -1 ? path : path.slice(slash + 1);
}

/** Checks a byte range and returns it, so that every connector refuses the same bad ranges. */
export function checkRange(range: { offset: number; length: number }): void {
  if (!Number.isSafeInteger(range.offset) || range.offset < 0) {
    throw new RangeError(`Cannot read at offset ${range.offset}: it must be a non-negative integer`);
  }
  if (!Number.isSafeInteger(range.length) || range.length < 0) {
    throw new RangeError(`Cannot read ${range.length} bytes: the length must be a non-negative integer`);
  }
}
