import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readdirSync, statSync } from 'node:fs';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  createCacheClient,
  mountIdOf,
  type CacheClient,
  type CacheClientOptions,
  type WorkerEndpoint,
  type WorkerProcessConfig,
} from '../../../src/cache/index.ts';
import { createUnderFileSystem } from '../../../src/ufs/index.ts';

const WORKER_MAIN = join(import.meta.dirname, '..', '..', '..', 'src', 'cache', 'worker-main.ts');

/** Registers cleanup: `t.after` of a test, or `after` of a file. */
export type Cleanup = (fn: () => Promise<void> | void) => void;

/**
 * A cache client of one web origin mounted at the dataset's root; `cleanup` closes it and its
 * connector.
 */
export function webCacheClient(
  cleanup: Cleanup,
  options: Omit<CacheClientOptions, 'mounts'> & { mountPoint: string },
): CacheClient {
  const { mountPoint, ...rest } = options;
  const ufs = createUnderFileSystem({ mountPoint, options: {}, secrets: {} });
  const created = createCacheClient({ ...rest, mounts: [{ id: mountIdOf(mountPoint), path: '/', ufs }] });
  cleanup(async () => {
    await created.close();
    await ufs.close();
  });
  return created;
}

export interface WorkerProcess {
  readonly child: ChildProcess;
  readonly url: string;
  readonly port: number;
  readonly workerId: string;
  readonly nodeName: string;
  readonly endpoint: WorkerEndpoint;
  /** Sends `signal` and waits for the process to exit. */
  kill(signal?: NodeJS.Signals): Promise<void>;
}

/**
 * Starts `src/cache/worker-main.ts` as a child process with `config` on its standard input, and
 * waits for its `listening` line.
 */
export async function spawnWorker(
  cleanup: Cleanup,
  config: WorkerProcessConfig,
  options: { timeoutMs?: number } = {},
): Promise<WorkerProcess> {
  const child = spawn(process.execPath, [WORKER_MAIN], { stdio: ['pipe', 'pipe', 'pipe'] });
  const exited = new Promise<void>((resolve) =>
    child.once('exit', () => {
      resolve();
    }),
  );
  const kill = async (signal: NodeJS.Signals = 'SIGTERM'): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    await exited;
  };
  cleanup(() => kill('SIGKILL'));
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-4000);
  });
  child.stdin.end(JSON.stringify(config));
  const timeoutMs = options.timeoutMs ?? 20_000;
  const lines = createInterface({ input: child.stdout });
  const listening = await new Promise<{ url: string; port: number; workerId: string; nodeName: string }>(
    (resolve, reject) => {
      const timer = setTimeout(() => {
        reject(
          new Error(
            `worker ${config.workerId ?? ''} did not report listening within ${timeoutMs} ms: ${stderr}`,
          ),
        );
      }, timeoutMs);
      lines.on('line', (line) => {
        const event = JSON.parse(line) as {
          event: string;
          url: string;
          port: number;
          workerId: string;
          nodeName: string;
        };
        if (event.event !== 'listening') return;
        clearTimeout(timer);
        resolve(event);
      });
      child.once('exit', (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`worker exited (${code ?? signal ?? '?'}) before listening: ${stderr}`));
      });
    },
  );
  return {
    child,
    ...listening,
    endpoint: { id: listening.workerId, url: listening.url, nodeName: listening.nodeName },
    kill,
  };
}

export async function tempDir(cleanup: Cleanup, base = tmpdir(), prefix = 'tide-cache-it-'): Promise<string> {
  const dir = await mkdtemp(join(base, prefix));
  cleanup(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

export function sha256(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

/**
 * Reads a whole dataset file through the client in `chunkBytes` pieces, as a FUSE server would: the
 * version from one stat (unless given), every read into the same buffer. `onChunk` runs after each.
 */
export async function readThrough(
  client: CacheClient,
  path: string,
  options: { chunkBytes: number; version?: string; onChunk?: (offset: number) => Promise<void> | void },
): Promise<Buffer> {
  const version = options.version ?? (await client.stat(path)).version;
  const into = Buffer.allocUnsafe(options.chunkBytes);
  const parts: Buffer[] = [];
  for (let offset = 0; ; offset += options.chunkBytes) {
    const part = await client.read(path, { offset, length: options.chunkBytes, version, into });
    parts.push(Buffer.from(part));
    await options.onChunk?.(offset + part.length);
    if (part.length < options.chunkBytes) break;
  }
  return Buffer.concat(parts);
}

/**
 * Bytes under `dir` counted as `du` does (allocated blocks), temporary files included. Synchronous
 * on purpose: a sampler running beside a busy data path must not queue behind it in the thread pool
 * (a walk of a tier is about a hundred entries). Files and directories vanishing during the walk
 * (eviction is running) only drop out of the count.
 */
export function diskUsage(dir: string): number {
  // By inode: a block file renamed from tmp/ into its shard while the walk runs is one file.
  const inodes = new Map<number, number>();
  const pending = [dir];
  for (let current = pending.pop(); current !== undefined; current = pending.pop()) {
    let entries;
    try {
      entries = readdirSync(current, { withFileTypes: true });
    } catch {
      continue;
    }
    for (const entry of entries) {
      const path = join(current, entry.name);
      if (entry.isDirectory()) {
        pending.push(path);
      } else if (entry.isFile()) {
        const stats = statSync(path, { throwIfNoEntry: false });
        if (stats !== undefined)
          inodes.set(stats.ino, Math.max(inodes.get(stats.ino) ?? 0, stats.blocks * 512));
      }
    }
  }
  let total = 0;
  for (const bytes of inodes.values()) total += bytes;
  return total;
}

/** Every block file under a tier directory. */
export async function blockFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true, recursive: true });
  return entries
    .filter((entry) => entry.isFile() && entry.name.endsWith('.blk'))
    .map((entry) => join(entry.parentPath, entry.name));
}

/** Polls `read` until `done(value)`; fails with `what` after `timeoutMs`. */
export async function waitFor<T>(
  what: string,
  read: () => Promise<T>,
  done: (value: T) => boolean,
  timeoutMs = 5000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await read();
    if (done(value)) return value;
    if (Date.now() > deadline)
      throw new Error(`Timed out after ${timeoutMs} ms waiting for ${what}: ${JSON.stringify(value)}`);
    await sleep(20);
  }
}
