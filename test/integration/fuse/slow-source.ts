/**
 * A source module for the tests of the `source.module` hook: the local directory source, except that
 * reads of paths containing "slow" wait `options.delayMs` first (the supervisor's server process
 * imports this file and calls createFileSource).
 */
import { createLocalDirectorySource } from '../../../src/fuse/index.ts';
import type { FileSource, SourceConfig } from '../../../src/fuse/index.ts';
import { setTimeout as sleep } from 'node:timers/promises';

export function createFileSource(config: SourceConfig): FileSource {
  const local = createLocalDirectorySource(config.dir ?? '/nonexistent');
  const delayMs = (config.options as { delayMs?: number } | undefined)?.delayMs ?? 3000;
  return {
    getattr: (path, signal) => local.getattr(path, signal),
    readdir: (path, signal) => local.readdir(path, signal),
    async read(path, options) {
      if (path.includes('slow')) await sleep(delayMs, undefined, { signal: options.signal });
      return local.read(path, options);
    },
  };
}
