import { chmod, lstat, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../lib/index.ts';

/** Entries looked at when an earlier Tide left group- or world-readable state behind. */
const MAX_ENTRIES = 100_000;

/**
 * Makes `$TIDE_HOME` owner-only: the directory itself (with a warning when it was not) and what an
 * earlier version left readable under it (state database, logs, run files, cache blocks). The
 * walk stays on the home's file system, does not enter `skip` (the mount root, whose entries are
 * FUSE mounts) and stops after 100,000 entries. New files need none of this: the daemon runs
 * with umask 077.
 */
export async function makeHomeOwnerOnly(
  home: string,
  skip: readonly string[],
  logger: Logger,
): Promise<void> {
  const root = await lstat(home);
  if ((root.mode & 0o077) !== 0) {
    logger.warn(
      { home, mode: (root.mode & 0o777).toString(8) },
      'TIDE_HOME was open to other users; it is now owner-only (0700)',
    );
    await chmod(home, 0o700);
  }
  let fixed = 0;
  let seen = 0;
  const walk = async (dir: string): Promise<void> => {
    let names: string[];
    try {
      names = await readdir(dir);
    } catch {
      return;
    }
    for (const name of names) {
      if (seen >= MAX_ENTRIES) return;
      seen += 1;
      const path = join(dir, name);
      if (skip.includes(path)) continue;
      const entry = await lstat(path).catch(() => undefined);
      if (entry === undefined || entry.dev !== root.dev || entry.isSymbolicLink()) continue;
      if ((entry.mode & 0o077) !== 0) {
        await chmod(path, entry.mode & 0o700).catch(() => undefined);
        fixed += 1;
      }
      if (entry.isDirectory()) await walk(path);
    }
  };
  await walk(home);
  if (fixed > 0)
    logger.warn({ home, fixed }, 'files under TIDE_HOME were open to other users; now owner-only');
}
