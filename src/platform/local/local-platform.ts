import { createHash, randomBytes } from 'node:crypto';
import { spawn } from 'node:child_process';
import { mkdir, open, readFile, rm, writeFile, rename } from 'node:fs/promises';
import { createServer } from 'node:net';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Level } from '../../api/index.ts';
import { fetchWorkerStats } from '../../cache/index.ts';
import { SecretValue, type Logger } from '../../lib/index.ts';
import type {
  CacheStatistics,
  DatasetRef,
  LoadProgress,
  Platform,
  RuntimeObservation,
  RuntimePlan,
  LoadPlan,
} from '../types.ts';
import { isFuseMounted, processesUsing } from './proc-scan.ts';
import { ProcessSupervisor } from './process-supervisor.ts';
import { openDatasetClient } from './dataset-client.ts';
import { loadTargets } from './loader.ts';
import type { VersionsFile } from '../dataset-versions.ts';

const WORKER_MAIN = fileURLToPath(new URL('../../cache/worker-main.ts', import.meta.url));
const MOUNT_MAIN = fileURLToPath(new URL('../../fuse/mount-main.ts', import.meta.url));
const DATASET_SOURCE = fileURLToPath(new URL('./dataset-source.ts', import.meta.url));

export interface LocalPlatformOptions {
  /** Process records, configurations (owner-only files: they hold credentials) and membership. */
  runDir: string;
  /** Root of the default cache tier when a runtime names none. */
  cacheDir: string;
  /** Datasets mount at `<mountRoot>/<namespace>/<name>`. */
  mountRoot: string;
  pvcRoot: string;
  logger: Logger;
}

/** The membership file the dataset's clients (FUSE mount, loader) follow. */
export interface MembershipFile {
  workers: { id: string; url: string; nodeName: string }[];
}

/** The file the FUSE source of a dataset reads (`dataset-source.ts`). */
export interface DatasetSourceFile {
  datasetId: string;
  /** The runtime's bearer token, which its workers require of every request. */
  token: string;
  blockSizeBytes: number;
  membershipPath: string;
  pvcRoot: string;
  mounts: {
    path: string;
    mountPoint: string;
    options: Record<string, string>;
    secrets: Record<string, string>;
  }[];
}

/**
 * The embedded platform: a runtime's workers are local `worker-main.ts` processes and its mount a
 * `mount-main.ts` process (the FUSE supervisor), all started detached and supervised, so that a
 * crash of the daemon leaves datasets mounted and a restarted daemon re-adopts them.
 */
export class LocalPlatform implements Platform {
  /** Workers and mounts are local processes: pod fields do not apply. */
  readonly schedulesPods = false;
  readonly #options: LocalPlatformOptions;
  readonly #supervisor: ProcessSupervisor;
  readonly #adopted: Promise<string[]>;
  readonly #nodeName = hostname();
  #stopped = false;

  constructor(options: LocalPlatformOptions) {
    this.#options = options;
    this.#supervisor = new ProcessSupervisor({
      stateDir: join(options.runDir, 'processes'),
      logger: options.logger,
    });
    this.#adopted = this.#supervisor.adopt();
  }

  async apply(plan: RuntimePlan, signal: AbortSignal): Promise<RuntimeObservation> {
    await this.#adopted;
    if (this.#stopped) throw new Error('the local platform is stopping');
    const prefix = prefixOf(plan.dataset);
    const dir = this.#datasetDir(plan.dataset);
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const token = await tokenOf(dir);
    const workers: MembershipFile['workers'] = [];
    for (let index = 0; index < plan.workers; index += 1) {
      workers.push(await this.#ensureWorker(plan, index, dir, token));
    }
    for (const id of this.#supervisor.ids(`${prefix}-worker-`)) {
      const index = Number(id.slice(`${prefix}-worker-`.length));
      if (index >= plan.workers) await this.#supervisor.stop(id);
    }
    const health = await Promise.all(workers.map((worker) => isHealthy(worker.url, signal)));
    const ready = workers.filter((_, index) => health[index] === true);
    const problems: string[] = [];
    for (const [index, worker] of workers.entries()) {
      if (health[index] === true) continue;
      const problem = await this.#workerProblem(worker.id, join(dir, `worker-${index}.log`));
      if (problem !== undefined) problems.push(problem);
    }
    const membershipPath = join(dir, 'members.json');
    await writeAtomically(membershipPath, JSON.stringify({ workers: ready } satisfies MembershipFile));
    const sourcePath = join(dir, 'dataset.json');
    const source: DatasetSourceFile = {
      datasetId: `${plan.dataset.namespace}/${plan.dataset.name}`,
      token,
      blockSizeBytes: plan.blockSizeBytes,
      membershipPath,
      pvcRoot: this.#options.pvcRoot,
      mounts: plan.mounts.map((mount) => ({
        path: mount.path,
        mountPoint: mount.mountPoint,
        options: { ...mount.options },
        secrets: Object.fromEntries(
          Object.entries(mount.secrets).map(([name, value]) => [name, value.reveal()]),
        ),
      })),
    };
    await writeAtomically(sourcePath, JSON.stringify(source));
    const target = this.mountPathOf(plan.dataset);
    await this.#ensureMount(plan, dir, target, sourcePath);
    const mounted = await isFuseMounted(target);
    return {
      workers: {
        desired: plan.workers,
        current: this.#supervisor.ids(`${prefix}-worker-`).length,
        ready: ready.length,
        ...(problems.length === 0 ? {} : { problem: problems.join('; ') }),
      },
      fuse: { desired: 1, ready: mounted ? 1 : 0, ...(mounted ? { mountPath: target } : {}) },
    };
  }

  /**
   * Warms the cache from the daemon with the dataset's cache client: each target is listed as a
   * stream and its files are loaded as they arrive (`parallelism` files at once), each block on
   * its owner workers, so listing and fetching overlap even for 100,000 small files.
   */
  async load(
    plan: LoadPlan,
    options: { signal: AbortSignal; onProgress: (progress: LoadProgress) => void },
  ): Promise<LoadProgress> {
    await this.#adopted;
    const configPath = join(this.#datasetDir(plan.dataset), 'dataset.json');
    const { client, close } = await openDatasetClient(configPath, this.#options.logger);
    const versions: [string, string][] = [];
    try {
      const stats = await this.statistics(plan.dataset, options.signal);
      const progress = await loadTargets(client, plan, {
        ...options,
        onListed: (entry) => versions.push([entry.path, entry.version]),
        ...(stats === undefined || stats.capacityBytes === 0 ? {} : { capacityBytes: stats.capacityBytes }),
      });
      // The mount drops its kernel caches of files whose version changed (or that are gone).
      const file: VersionsFile = { targets: plan.targets.map((target) => target.path), entries: versions };
      await writeAtomically(join(this.#datasetDir(plan.dataset), 'versions.json'), JSON.stringify(file));
      return progress;
    } finally {
      await close();
    }
  }

  async remove(dataset: DatasetRef, options: { cleanCache: boolean; signal: AbortSignal }): Promise<void> {
    await this.#adopted;
    const prefix = prefixOf(dataset);
    const target = this.mountPathOf(dataset);
    await this.#supervisor.stop(`${prefix}-fuse`, 20_000);
    if (await isFuseMounted(target)) await run('umount', ['-l', target]);
    await this.#supervisor.stopAll(`${prefix}-worker-`);
    const dir = this.#datasetDir(dataset);
    if (options.cleanCache) {
      for (const path of await this.#cacheDirsOf(dir)) {
        // ENOTDIR: a tier "directory" under a file, which its worker could never create.
        await rm(path, { recursive: true, force: true }).catch((error: unknown) => {
          if ((error as NodeJS.ErrnoException).code !== 'ENOTDIR') throw error;
        });
      }
    }
    await rm(dir, { recursive: true, force: true });
    await rm(target, { recursive: false, force: true }).catch(() => undefined);
  }

  async usersOf(dataset: DatasetRef): Promise<string[]> {
    const target = this.mountPathOf(dataset);
    if (!(await isFuseMounted(target))) return [];
    const ours = new Set([
      process.pid,
      ...this.#supervisor.ids().map((id) => this.#supervisor.pidOf(id) ?? -1),
    ]);
    return processesUsing(target, ours);
  }

  async statistics(dataset: DatasetRef, signal: AbortSignal): Promise<CacheStatistics | undefined> {
    let members: MembershipFile;
    try {
      members = JSON.parse(
        await readFile(join(this.#datasetDir(dataset), 'members.json'), 'utf8'),
      ) as MembershipFile;
    } catch {
      return undefined;
    }
    const totals: CacheStatistics = {
      cachedBytes: 0,
      capacityBytes: 0,
      usedBytes: 0,
      bytesReadLocal: 0,
      bytesReadRemote: 0,
      bytesReadOrigin: 0,
    };
    // A worker that does not answer adds nothing; its readiness shows in the runtime status.
    const token = await readFile(join(this.#datasetDir(dataset), TOKEN_FILE), 'utf8').catch(() => undefined);
    if (token === undefined) return undefined;
    const secret = new SecretValue(token);
    const results = await Promise.allSettled(
      members.workers.map((worker) => fetchWorkerStats(worker, { token: secret, signal, timeoutMs: 2000 })),
    );
    for (const result of results) {
      if (result.status !== 'fulfilled') continue;
      const stats = result.value;
      totals.cachedBytes += stats.cachedBytes;
      totals.capacityBytes += stats.capacityBytes;
      totals.usedBytes += stats.usedBytes;
      totals.bytesReadLocal += stats.counters.servedLocalBytes;
      totals.bytesReadRemote += stats.counters.servedRemoteBytes;
      totals.bytesReadOrigin += stats.counters.servedOriginBytes;
    }
    return totals;
  }

  /** `tide stop`: unmounts every dataset and stops every worker; caches stay for the next start. */
  async stopAll(): Promise<void> {
    this.#stopped = true;
    await this.#adopted;
    const mounts = this.#supervisor.ids().filter((id) => id.endsWith('-fuse'));
    await Promise.all(mounts.map((id) => this.#supervisor.stop(id, 20_000)));
    await this.#supervisor.stopAll();
    this.#supervisor.detach();
  }

  mountPathOf(dataset: DatasetRef): string {
    return join(this.#options.mountRoot, dataset.namespace, dataset.name);
  }

  async #ensureWorker(
    plan: RuntimePlan,
    index: number,
    dir: string,
    token: string,
  ): Promise<MembershipFile['workers'][number]> {
    const id = `${prefixOf(plan.dataset)}-worker-${index}`;
    const configPath = join(dir, `worker-${index}.json`);
    const previous = await readJson<{ port?: number; configHash?: string }>(
      join(dir, `worker-${index}.port.json`),
    );
    const config = {
      datasetId: `${plan.dataset.namespace}/${plan.dataset.name}`,
      workerId: id,
      nodeName: this.#nodeName,
      host: '127.0.0.1',
      port: previous?.port ?? (await freePort()),
      token,
      blockSize: plan.blockSizeBytes,
      tieredstore: { levels: this.#workerLevels(plan, index) },
      mounts: plan.mounts.map((mount) => ({
        mountPoint: mount.mountPoint,
        options: { ...mount.options },
        secrets: Object.fromEntries(
          Object.entries(mount.secrets).map(([name, value]) => [name, value.reveal()]),
        ),
      })),
      pvcRoot: this.#options.pvcRoot,
    };
    await writeAtomically(configPath, JSON.stringify(config));
    await writeAtomically(join(dir, `worker-${index}.port.json`), JSON.stringify({ port: config.port }));
    await this.#supervisor.ensure({
      id,
      entry: WORKER_MAIN,
      // The configuration's content is part of the spec, so a changed configuration restarts the worker.
      args: ['--config', configPath],
      env: { TIDE_CONFIG_DIGEST: digest(JSON.stringify(config)) },
      logPath: join(dir, `worker-${index}.log`),
    });
    return { id, url: `http://127.0.0.1:${config.port}`, nodeName: this.#nodeName };
  }

  /** Each worker gets the runtime's tiers (quotas are per worker, as in Fluid) in its own directories. */
  #workerLevels(plan: RuntimePlan, index: number): Level[] {
    const suffix = `tide-${plan.dataset.namespace}-${plan.dataset.name}-w${index}`;
    const levels: readonly Level[] =
      plan.tiers.length > 0
        ? plan.tiers
        : [
            {
              mediumtype: 'SSD',
              path: join(this.#options.cacheDir, 'default'),
              quota: '10Gi',
              high: '0.95',
              low: '0.8',
            },
          ];
    return levels.map((level) => ({
      ...level,
      path: (level.path ?? (level.mediumtype === 'MEM' ? '/dev/shm' : this.#options.cacheDir))
        .split(',')
        .map((path) => join(path.trim(), suffix))
        .join(','),
    }));
  }

  /** Why a worker is not answering: how it last exited and the last error its log holds. */
  async #workerProblem(id: string, logPath: string): Promise<string | undefined> {
    const exit = this.#supervisor.lastExitOf(id);
    if (exit === undefined) return undefined;
    const how =
      exit.code === null ? `was killed (${exit.signal ?? 'signal'})` : `exited with code ${exit.code}`;
    const times = exit.failures > 1 ? ` (${exit.failures} times in a row)` : '';
    const error = await lastLoggedError(logPath);
    return `${id} ${how}${times}${error === undefined ? '' : `: ${error}`}`;
  }

  async #cacheDirsOf(dir: string): Promise<string[]> {
    const paths: string[] = [];
    for (let index = 0; ; index += 1) {
      const config = await readJson<{ tieredstore: { levels: Level[] } }>(join(dir, `worker-${index}.json`));
      if (config === undefined) break;
      for (const level of config.tieredstore.levels)
        paths.push(...(level.path ?? '').split(',').filter((path) => path !== ''));
    }
    return paths;
  }

  async #ensureMount(plan: RuntimePlan, dir: string, target: string, sourcePath: string): Promise<void> {
    await mkdir(target, { recursive: true });
    const fuseArgs = [...plan.fuseArgs];
    if (plan.readOnly && !fuseArgs.some((arg) => /(^|[-,=o])ro(,|$)/.test(arg))) fuseArgs.push('-oro');
    // A local origin's owners and modes are shown as they are: the kernel checks them.
    const hasOwners = plan.mounts.some((mount) => /^(local|pvc):\/\//.test(mount.mountPoint));
    if (hasOwners && !fuseArgs.some((arg) => arg.includes('default_permissions')))
      fuseArgs.push('-odefault_permissions');
    // Datasets carry no extended attributes: answering ENOSYS once spares `ls -l` two requests a file.
    if (!fuseArgs.some((arg) => arg.includes('xattr'))) fuseArgs.push('-ono_xattr');
    const configPath = join(dir, 'mount.json');
    const config = {
      target,
      fuseArgs,
      source: { kind: 'tide-dataset', module: DATASET_SOURCE, options: { configPath: sourcePath } },
    };
    await writeAtomically(configPath, JSON.stringify(config));
    await this.#supervisor.ensure({
      id: `${prefixOf(plan.dataset)}-fuse`,
      entry: MOUNT_MAIN,
      args: [configPath],
      env: { TIDE_CONFIG_DIGEST: digest(JSON.stringify(config)) },
      logPath: join(dir, 'fuse.log'),
    });
  }

  #datasetDir(dataset: DatasetRef): string {
    return join(this.#options.runDir, dataset.namespace, dataset.name);
  }
}

/** The runtime's bearer token, in its run directory (owner-only): made once, kept across restarts. */
const TOKEN_FILE = 'token';

/**
 * Reads the runtime's token, or makes it. Workers listen on 127.0.0.1, which every local user can
 * reach: the token is what keeps other users from reading blocks (fetched with the dataset's
 * credentials), listing files or dropping the cache.
 */
async function tokenOf(dir: string): Promise<string> {
  const path = join(dir, TOKEN_FILE);
  const existing = await readFile(path, 'utf8').catch(() => undefined);
  if (existing !== undefined && existing.length >= 32) return existing;
  const token = randomBytes(32).toString('base64url');
  await writeAtomically(path, token);
  return token;
}

function prefixOf(dataset: DatasetRef): string {
  return `${dataset.namespace}-${dataset.name}`;
}

async function isHealthy(url: string, signal: AbortSignal): Promise<boolean> {
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline && !signal.aborted) {
    try {
      const response = await fetch(`${url}/healthz`, {
        signal: AbortSignal.any([signal, AbortSignal.timeout(1000)]),
      });
      await response.body?.cancel();
      if (response.ok) return true;
    } catch {
      // not listening yet
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return false;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => {
        resolve(typeof address === 'object' && address !== null ? address.port : 0);
      });
    });
  });
}

/**
 * The last error a process logged: the message of its last pino line at error level or above, or
 * its last plain line (what worker-main writes for a configuration it cannot read).
 */
async function lastLoggedError(logPath: string): Promise<string | undefined> {
  let text: string;
  try {
    const handle = await open(logPath, 'r');
    try {
      const { size } = await handle.stat();
      const length = Math.min(size, 16 * 1024);
      const buffer = Buffer.alloc(length);
      await handle.read(buffer, 0, length, size - length);
      text = buffer.toString('utf8');
    } finally {
      await handle.close();
    }
  } catch {
    return undefined;
  }
  for (const line of text.split('\n').reverse()) {
    if (line.trim() === '') continue;
    let record: { level?: number; msg?: string; err?: { message?: string } } | undefined;
    try {
      record = JSON.parse(line) as typeof record;
    } catch {
      return line.trim().slice(0, 500);
    }
    if ((record?.level ?? 0) < 50) continue;
    const message = record?.err?.message;
    return [record?.msg, message]
      .filter((part) => part !== undefined && part !== '')
      .join(': ')
      .slice(0, 500);
  }
  return undefined;
}

async function readJson<T>(path: string): Promise<T | undefined> {
  try {
    return JSON.parse(await readFile(path, 'utf8')) as T;
  } catch {
    return undefined;
  }
}

async function writeAtomically(path: string, text: string): Promise<void> {
  const temporary = `${path}.${process.pid}.tmp`;
  await writeFile(temporary, text, { mode: 0o600 });
  await rename(temporary, path);
}

function digest(text: string): string {
  return createHash('sha256').update(text).digest('hex').slice(0, 16);
}

function run(command: string, args: readonly string[]): Promise<void> {
  return new Promise((resolve) => {
    const child = spawn(command, args, { stdio: 'ignore' });
    child.once('exit', () => {
      resolve();
    });
    child.once('error', () => {
      resolve();
    });
  });
}
