import { spawn } from 'node:child_process';
import { openSync, constants } from 'node:fs';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { FuseError } from './errors.ts';
import type { FuseMountOptions } from './options.ts';

interface CommandResult {
  code: number | null;
  stderr: string;
}

function run(
  command: string,
  args: readonly string[],
  options: { fd?: number; signal: AbortSignal },
): Promise<CommandResult> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(command, args, {
      stdio:
        options.fd === undefined ? ['ignore', 'ignore', 'pipe'] : ['ignore', 'ignore', 'pipe', options.fd],
      signal: options.signal,
    });
    let stderr = '';
    child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk;
    });
    child.on('error', reject);
    child.on('close', (code) => {
      resolvePromise({ code, stderr: stderr.trim() });
    });
  });
}

/** Opens /dev/fuse for a new connection. The descriptor is handed to mount(8) and the server. */
export function openFuseDevice(path = '/dev/fuse'): number {
  try {
    return openSync(path, constants.O_RDWR);
  } catch (error) {
    throw new FuseError(
      'ERR_FUSE_DEVICE',
      `Cannot open ${path}: is the fuse module loaded and the process privileged?`,
      { cause: error },
    );
  }
}

/** One entry of /proc/self/mounts whose mount point is `target`, if any (the last one wins). */
export async function findMount(
  target: string,
): Promise<{ source: string; type: string; options: string } | undefined> {
  const absolute = resolve(target);
  const text = await readFile('/proc/self/mounts', 'utf8');
  let found: { source: string; type: string; options: string } | undefined;
  for (const line of text.split('\n')) {
    const [source, point, type, options] = line.split(' ');
    // /proc/mounts escapes space, tab, newline and backslash as octal.
    const decoded = point?.replace(/\\([0-7]{3})/g, (_, octal: string) =>
      String.fromCharCode(Number.parseInt(octal, 8)),
    );
    if (decoded === absolute && source !== undefined && type !== undefined && options !== undefined) {
      found = { source, type, options };
    }
  }
  return found;
}

/**
 * Removes a dead FUSE mount at `target` — one whose server is gone, so that stat fails with ENOTCONN
 * ("Transport endpoint is not connected") — before mounting there again.
 * @returns true when a stale mount was cleared.
 * @throws {FuseError} ERR_FUSE_MOUNT when a live mount is there.
 */
export async function clearStaleMount(target: string, signal: AbortSignal): Promise<boolean> {
  try {
    await stat(target);
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    if (code === 'ENOTCONN' || code === 'ECONNABORTED') {
      await unmount(target, { lazy: true, signal });
      return true;
    }
    if (code !== 'ENOENT')
      throw new FuseError('ERR_FUSE_MOUNT', `Cannot inspect mount target ${target}`, { cause: error });
    return false;
  }
  const existing = await findMount(target);
  if (existing?.type.startsWith('fuse') === true) {
    throw new FuseError(
      'ERR_FUSE_MOUNT',
      `Cannot mount at ${target} as a live FUSE mount is there: ${existing.source} (${existing.type})`,
    );
  }
  return false;
}

/** The mount(2) data string of a FUSE mount (fs/fuse/inode.c parameters). */
export function mountData(fd: number, options: FuseMountOptions): string {
  const data = [
    `fd=${fd}`,
    'rootmode=40000',
    `user_id=${process.getuid?.() ?? 0}`,
    `group_id=${process.getgid?.() ?? 0}`,
  ];
  if (options.allowOther) data.push('allow_other');
  if (options.defaultPermissions) data.push('default_permissions');
  if (options.maxReadBytes !== undefined) data.push(`max_read=${options.maxReadBytes}`);
  return data.join(',');
}

/**
 * Mounts the FUSE connection of the open descriptor `fd` at `target`, read-only, through mount(8)
 * with `-i` (no mount.fuse helper): the child gets the descriptor as its fd 3, which the kernel
 * resolves when it parses `fd=3`. mount(2) returns at once; INIT reaches the server afterwards.
 */
export async function mountFuse(options: {
  fd: number;
  target: string;
  options: FuseMountOptions;
  signal: AbortSignal;
}): Promise<void> {
  const args = [
    '-i',
    '-n',
    '-t',
    `fuse.${options.options.subtype}`,
    '-o',
    `${options.options.readOnlyMount ? 'ro' : 'rw'},nosuid,nodev,${mountData(3, options.options)}`,
    options.options.fsname,
    resolve(options.target),
  ];
  const result = await run('mount', args, { fd: options.fd, signal: options.signal });
  if (result.code !== 0) {
    throw new FuseError(
      'ERR_FUSE_MOUNT',
      `Cannot mount FUSE at ${options.target}: mount exited with ${result.code}: ${result.stderr}`,
    );
  }
}

/**
 * Unmounts `target`. A busy mount is detached lazily (`umount -l`) so that the call never hangs on
 * an application holding a file open. A target that is not mounted is not an error.
 */
export async function unmount(
  target: string,
  options: { lazy?: boolean; signal: AbortSignal },
): Promise<void> {
  const absolute = resolve(target);
  if (options.lazy !== true) {
    const result = await run('umount', [absolute], { signal: options.signal });
    if (result.code === 0 || /not mounted|no mount point/i.test(result.stderr)) return;
  }
  const lazy = await run('umount', ['-l', absolute], { signal: options.signal });
  if (lazy.code === 0 || /not mounted|no mount point/i.test(lazy.stderr)) return;
  const fusermount = await run('fusermount3', ['-u', '-z', absolute], { signal: options.signal }).catch(
    () => undefined,
  );
  if (fusermount?.code === 0) return;
  throw new FuseError('ERR_FUSE_UNMOUNT', `Cannot unmount ${target}: ${lazy.stderr}`);
}

/**
 * Sets the kernel readahead of the mount (its backing_dev_info) to `readAheadKb`. The INIT reply can
 * only lower it below the kernel's default of 128 KiB; raising it lets sequential reads through the
 * page cache arrive in large requests. Best effort: returns false when sysfs refuses.
 */
export async function setReadAhead(target: string, readAheadKb: number): Promise<boolean> {
  try {
    const { dev } = await stat(target);
    // st_dev of an anonymous superblock: major in bits 8..19, minor in bits 0..7 and 20..31.
    const major = (dev >> 8) & 0xfff;
    const minor = (dev & 0xff) | ((dev >> 12) & 0xfff00);
    await writeFile(`/sys/class/bdi/${major}:${minor}/read_ahead_kb`, String(readAheadKb));
    return true;
  } catch {
    return false;
  }
}
