import type { Dispatcher } from 'undici';
import { toError, type Logger } from '../lib/index.ts';
import type { WorkerEndpoint } from './membership.ts';
import { MountTable, normaliseDatasetPath } from './mount-table.ts';
import { FORGET_PATH, STATS_PATH } from './protocol.ts';
import type { WorkerStats } from './worker-stats.ts';

/** File versions named per forget request, well under the worker's body limit. */
const FORGET_BATCH = 10_000;

export interface PruneResult {
  blocks: number;
  bytes: number;
}

export interface PruneContext {
  workers: readonly WorkerEndpoint[];
  mounts: MountTable;
  /** The client's connection to a worker, and the headers (authorisation) its requests carry. */
  dispatcher: (worker: WorkerEndpoint) => Dispatcher;
  headers: Record<string, string>;
  logger: Logger;
  signal?: AbortSignal;
}

/**
 * Asks every worker once which file versions it holds under the dataset directories `paths` and
 * makes it drop those whose version is not the one in `current` (dataset path → version, from the
 * listings of `paths`): files that changed or disappeared at the origin. Best effort: a worker that does not
 * answer keeps its blocks, which no reader asks for any more and the LRU evicts in time.
 */
export async function pruneStaleBlocks(
  context: PruneContext,
  paths: readonly string[],
  current: ReadonlyMap<string, string>,
): Promise<PruneResult> {
  const targets = paths.map(normaliseDatasetPath);
  const under = (datasetPath: string): boolean =>
    targets.some((target) => target === '' || datasetPath === target || datasetPath.startsWith(`${target}/`));
  const result: PruneResult = { blocks: 0, bytes: 0 };
  await Promise.all(
    context.workers.map(async (worker) => {
      try {
        const stats = await call<WorkerStats>(context, worker, 'GET', `${STATS_PATH}?files=1`);
        const stale = (stats.files ?? []).filter((file) => {
          const mount = context.mounts.byId(file.mount);
          if (mount === undefined) return false;
          const datasetPath = MountTable.datasetPathOf(file.path, mount);
          return under(datasetPath) && current.get(datasetPath) !== file.version;
        });
        for (let start = 0; start < stale.length; start += FORGET_BATCH) {
          const files = stale
            .slice(start, start + FORGET_BATCH)
            .map(({ mount, path: filePath, version }) => ({ mount, path: filePath, version }));
          const dropped = await call<PruneResult>(context, worker, 'POST', FORGET_PATH, { files });
          result.blocks += dropped.blocks;
          result.bytes += dropped.bytes;
        }
      } catch (error) {
        if (context.signal?.aborted === true) throw error;
        context.logger.warn(
          { worker: worker.id, err: toError(error) },
          'cannot drop the blocks of changed files from a worker; they age out instead',
        );
      }
    }),
  );
  return result;
}

async function call<T>(
  context: PruneContext,
  worker: WorkerEndpoint,
  method: 'GET' | 'POST',
  path: string,
  body?: unknown,
): Promise<T> {
  const { statusCode, body: answer } = await context.dispatcher(worker).request({
    path,
    method,
    headers:
      body === undefined ? context.headers : { ...context.headers, 'content-type': 'application/json' },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    ...(context.signal === undefined ? {} : { signal: context.signal }),
  });
  if (statusCode !== 200) {
    const text = await answer.text().catch(() => '');
    throw new Error(`worker ${worker.id} answered ${statusCode} to ${method} ${path}: ${text.slice(0, 200)}`);
  }
  return (await answer.json()) as T;
}
