/**
 * The FileSource of a dataset mounted by the local platform: metadata from the dataset's
 * connectors, bytes through the cache client (workers, short-circuit, read-ahead, origin
 * fallback). The FUSE server process loads this module by path (mount config `source.module`).
 */
import { hasCode } from '../../lib/index.ts';
import type {
  DirectoryEntry,
  FileAttributes,
  FileSource,
  SourceConfig,
  SourceFactoryContext,
} from '../../fuse/index.ts';
import type { UfsEntry } from '../../ufs/index.ts';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { followFile, openDatasetClient } from './dataset-client.ts';
import type { VersionsFile } from './local-platform.ts';

/** How long attributes learned from a listing or a stat are reused before asking the origin again. */
const ATTRIBUTE_TTL_MS = 5000;

interface Cached {
  attributes: FileAttributes | undefined;
  expiresMs: number;
}

function attributesOf(entry: UfsEntry): FileAttributes {
  return { type: entry.type, sizeBytes: entry.sizeBytes, mtimeMs: entry.mtimeMs, version: entry.version };
}

function isNotFound(error: unknown): boolean {
  return hasCode(error, 'ERR_CACHE_NOT_FOUND') || hasCode(error, 'ERR_UFS_NOT_FOUND');
}

export async function createFileSource(
  config: SourceConfig,
  context: SourceFactoryContext,
): Promise<FileSource> {
  const configPath = (config.options as { configPath?: unknown } | undefined)?.configPath;
  if (typeof configPath !== 'string') throw new TypeError('the tide-dataset source needs options.configPath');
  let opened = await openDatasetClient(configPath, context.logger);
  const { runDir } = opened;
  const attributes = new Map<string, Cached>();
  /** Versions of the files the kernel has seen, to tell which ones a DataLoad found changed. */
  const known = new Map<string, string>();
  const listeners = new Set<(path: string) => void>();
  const stop = new AbortController();
  const versionsPath = join(runDir, 'versions.json');
  let lastVersions = '';
  void followFile(versionsPath, stop.signal, async () => {
    const text = await readFile(versionsPath, 'utf8').catch(() => '');
    if (text === '' || text === lastVersions) return;
    lastVersions = text;
    for (const path of changedPaths(JSON.parse(text) as VersionsFile, known)) {
      attributes.delete(path);
      known.delete(path);
      for (const listener of listeners) listener(path);
    }
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
    attributes.clear();
    const paths = [...known.keys()];
    known.clear();
    for (const listener of listeners) for (const path of ['/', ...paths]) listener(path);
    context.logger.info('dataset mounts changed; the namespace was reloaded');
    setTimeout(() => void previous.close(), 30_000).unref();
  });
  const remember = (path: string, value: FileAttributes | undefined): void => {
    if (attributes.size > 200_000) attributes.clear();
    attributes.set(path, { attributes: value, expiresMs: Date.now() + ATTRIBUTE_TTL_MS });
    if (value?.type === 'file') known.set(path, value.version);
  };
  return {
    async getattr(path, signal) {
      const cached = attributes.get(path);
      if (cached !== undefined && cached.expiresMs > Date.now()) return cached.attributes;
      try {
        const value = attributesOf(await opened.client.stat(path, { signal }));
        remember(path, value);
        return value;
      } catch (error) {
        if (isNotFound(error)) {
          remember(path, undefined);
          return undefined;
        }
        throw error;
      }
    },
    async readdir(path, signal) {
      const entries: DirectoryEntry[] = [];
      const prefix = path === '/' ? '/' : `${path}/`;
      for await (const entry of opened.client.list(path, { signal })) {
        const name = entry.path.slice(entry.path.lastIndexOf('/') + 1);
        const value = attributesOf(entry);
        remember(`${prefix}${name}`, value);
        entries.push({ name, type: entry.type, attributes: value });
      }
      entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
      return entries;
    },
    read(path, options) {
      return opened.client.read(path, options);
    },
    subscribe(onChange) {
      listeners.add(onChange);
      return () => listeners.delete(onChange);
    },
    async close() {
      stop.abort();
      await opened.close();
    },
  };
}

/** Known paths whose version differs from a load's listing, or that the listing of their target lacks. */
export function changedPaths(file: VersionsFile, known: ReadonlyMap<string, string>): string[] {
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
  return changed;
}
