import { pathToFileURL } from 'node:url';
import type { Logger } from '../lib/index.ts';
import type { SourceConfig } from './config.ts';
import { FuseError } from './errors.ts';
import { createLocalDirectorySource } from './local-source.ts';
import type { FileSource } from './source.ts';

export interface SourceFactoryContext {
  logger: Logger;
  signal: AbortSignal;
  /**
   * How long the source may answer listings and attributes from memory before asking its origin
   * again (the mount's metadata_ttl, see `metadataTtlSecondsOf`); a source may ignore it.
   */
  metadataTtlMs?: number;
}

/** Builds a FileSource from the `source` object of a mount configuration. */
export type FileSourceFactory = (
  config: SourceConfig,
  context: SourceFactoryContext,
) => FileSource | Promise<FileSource>;

const factories = new Map<string, FileSourceFactory>([
  [
    'local',
    (config) => {
      if (typeof config.dir !== 'string')
        throw new FuseError('ERR_FUSE_BAD_CONFIG', 'Cannot build a local source without /source/dir');
      const watch = (config.options as { watch?: unknown } | undefined)?.watch === true;
      return createLocalDirectorySource(config.dir, { watch });
    },
  ],
]);

/**
 * Makes a source kind available to mount configurations. Call it at the top level of the module
 * named in `source.module`, so that the server process registers the kind when it imports it.
 */
export function registerFileSourceKind(kind: string, factory: FileSourceFactory): void {
  factories.set(kind, factory);
}

/**
 * Builds the source of a mount: imports `config.module` first when given (it may export
 * `createFileSource` or register its kind), then calls the factory of `config.kind`.
 * @throws {FuseError} ERR_FUSE_BAD_CONFIG for an unknown kind or a module that cannot load.
 */
export async function createFileSource(
  config: SourceConfig,
  context: SourceFactoryContext,
): Promise<FileSource> {
  if (typeof config.module === 'string') {
    let loaded: { createFileSource?: FileSourceFactory };
    try {
      loaded = (await import(pathToFileURL(config.module).href)) as { createFileSource?: FileSourceFactory };
    } catch (error) {
      throw new FuseError('ERR_FUSE_BAD_CONFIG', `Cannot load source module ${config.module}`, {
        cause: error,
      });
    }
    if (typeof loaded.createFileSource === 'function' && !factories.has(config.kind))
      return loaded.createFileSource(config, context);
  }
  const factory = factories.get(config.kind);
  if (factory === undefined) {
    throw new FuseError(
      'ERR_FUSE_BAD_CONFIG',
      `Cannot build a source of kind "${config.kind}": no factory is registered for it`,
    );
  }
  return factory(config, context);
}
