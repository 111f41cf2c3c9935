/**
 * A source module for the tests of the `source.module` hook: the local directory source, except that
 * reads of paths containing "slow" wait `options.delayMs` first, and so does getattr of paths
 * containing "slow-meta". When such a wait is aborted (FUSE_INTERRUPT) a file named after the path
 * is written into `options.markerDir`. The supervisor's server process imports this file.
 */
import { createLocalDirectorySource } from '../../../src/fuse/index.ts';
import type { FileSource, SourceConfig } from '../../../src/fuse/index.ts';
import { setTimeout as sleep } from 'node:timers/promises';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';

export function createFileSource(config: SourceConfig): FileSource {
  const local = createLocalDirectorySource(config.dir ?? '/nonexistent');
  const settings = (config.options ?? {}) as { delayMs?: number; markerDir?: string };
  const delayMs = settings.delayMs ?? 3000;
  const wait = async (path: string, signal: AbortSignal): Promise<void> => {
    try {
      await sleep(delayMs, undefined, { signal });
    } catch (error) {
      if (settings.markerDir !== undefined)
        await writeFile(join(settings.markerDir, path.replaceAll('/', '_')), 'aborted');
      throw error;
    }
  };
  return {
    async getattr(path, signal) {
      if (path.includes('slow-meta')) await wait(path, signal);
      return local.getattr(path, signal);
    },
    readdir: (path, signal) => local.readdir(path, signal),
    async read(path, options) {
      if (path.includes('slow')) await wait(path, options.signal);
      return local.read(path, options);
    },
  };
}
