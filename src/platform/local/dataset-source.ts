/**
 * The FileSource of a dataset mounted by the local platform: metadata from the dataset's
 * connectors, bytes through the cache client (workers, short-circuit, read-ahead, origin
 * fallback). The FUSE server process loads this module by path (mount config `source.module`).
 */
import type { FileSource, SourceConfig, SourceFactoryContext } from '../../fuse/index.ts';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { DatasetFileSource } from '../dataset-file-source.ts';
import { followFile, openDatasetClient } from './dataset-client.ts';
import { changedPaths, type VersionsFile } from '../dataset-versions.ts';

export async function createFileSource(
  config: SourceConfig,
  context: SourceFactoryContext,
): Promise<FileSource> {
  const configPath = (config.options as { configPath?: unknown } | undefined)?.configPath;
  if (typeof configPath !== 'string') throw new TypeError('the tide-dataset source needs options.configPath');
  let opened = await openDatasetClient(configPath, context.logger);
  const stop = new AbortController();
  const source = new DatasetFileSource(
    opened.client,
    async () => {
      stop.abort();
      await opened.close();
    },
    context.metadataTtlMs === undefined ? {} : { metadataTtlMs: context.metadataTtlMs },
  );
  const versionsPath = join(opened.runDir, 'versions.json');
  let lastVersions = '';
  void followFile(versionsPath, stop.signal, async () => {
    const text = await readFile(versionsPath, 'utf8').catch(() => '');
    if (text === '' || text === lastVersions) return;
    lastVersions = text;
    source.invalidate(
      changedPaths(JSON.parse(text) as VersionsFile, source.known, (dir) => source.isListed(dir)),
    );
  });
  // Mounts added to or removed from the Dataset reach the running mount: the daemon rewrites the
  // dataset file, the source swaps its client, and the kernel forgets what it knew of the tree.
  let lastConfig = await readFile(configPath, 'utf8');
  void followFile(configPath, stop.signal, async () => {
    const text = await readFile(configPath, 'utf8').catch(() => lastConfig);
    if (text === lastConfig) return;
    lastConfig = text;
    const previous = opened;
    opened = await openDatasetClient(configPath, context.logger);
    source.replaceClient(opened.client);
    context.logger.info('dataset mounts changed; the namespace was reloaded');
    setTimeout(() => void previous.close(), 30_000).unref();
  });
  return source;
}
