/**
 * A source module for the directory-cache test: the local directory source, except that
 * directories have no mtime and a version only once they have been listed, as directories of web
 * and object-store origins do, and every readdir appends the directory's path to
 * `options.logPath`. The supervisor's server process imports this file.
 */
import { appendFileSync } from 'node:fs';
import { createLocalDirectorySource } from '../../../src/fuse/index.ts';
import type { FileSource, SourceConfig } from '../../../src/fuse/index.ts';

export function createFileSource(config: SourceConfig): FileSource {
  const local = createLocalDirectorySource(config.dir ?? '/nonexistent');
  const { logPath } = (config.options ?? {}) as { logPath?: string };
  const listed = new Set<string>();
  return {
    async getattr(path, signal) {
      const attributes = await local.getattr(path, signal);
      if (attributes?.type !== 'directory') return attributes;
      return { ...attributes, mtimeMs: 0, version: listed.has(path) ? 'listed' : '' };
    },
    async readdir(path, signal) {
      if (logPath !== undefined) appendFileSync(logPath, `${path}\n`);
      const entries = await local.readdir(path, signal);
      listed.add(path);
      return entries;
    },
    read: (path, options) => local.read(path, options),
  };
}
