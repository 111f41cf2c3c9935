import { readFile } from 'node:fs/promises';

/** One line of `/proc/<pid>/mountinfo` (proc(5)). */
export interface MountEntry {
  mountId: number;
  parentId: number;
  /** `major:minor` of the mounted filesystem: the same for a FUSE mount and every bind of it. */
  device: string;
  /** The directory of the filesystem this mount shows (`/` or a bind's sub directory). */
  root: string;
  mountPoint: string;
  /** Per-mount options (`rw`/`ro`, `nosuid`, …). */
  options: readonly string[];
  /** Optional fields: `shared:N`, `master:N`, … */
  propagation: readonly string[];
  fsType: string;
  source: string;
}

/** mountinfo escapes space, tab, newline and backslash as `\ooo` octal. */
function unescape(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(Number.parseInt(octal, 8)));
}

/** Parses mountinfo text; malformed lines are skipped (the kernel writes none). */
export function parseMountInfo(text: string): MountEntry[] {
  const entries: MountEntry[] = [];
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const fields = line.split(' ');
    const separator = fields.indexOf('-', 6);
    if (separator < 6 || fields.length < separator + 3) continue;
    entries.push({
      mountId: Number(fields[0]),
      parentId: Number(fields[1]),
      device: fields[2] ?? '',
      root: unescape(fields[3] ?? ''),
      mountPoint: unescape(fields[4] ?? ''),
      options: (fields[5] ?? '').split(','),
      propagation: fields.slice(6, separator),
      fsType: fields[separator + 1] ?? '',
      source: unescape(fields[separator + 2] ?? ''),
    });
  }
  return entries;
}

/** The mounts stacked at `path`, bottom first (mountinfo lists a mount after the one it covers). */
export function mountsAt(entries: readonly MountEntry[], path: string): MountEntry[] {
  return entries.filter((entry) => entry.mountPoint === path);
}

/** The mount visible at `path` (the top of its stack), if `path` is a mount point. */
export function topMountAt(entries: readonly MountEntry[], path: string): MountEntry | undefined {
  return mountsAt(entries, path).at(-1);
}

export function isReadOnly(entry: MountEntry): boolean {
  return entry.options.includes('ro');
}

/** Reads this process's mount table. */
export async function readMountInfo(signal?: AbortSignal): Promise<MountEntry[]> {
  return parseMountInfo(await readFile('/proc/self/mountinfo', { encoding: 'utf8', signal }));
}
