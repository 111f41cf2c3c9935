import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { isMounted, run, unmountAllUnder } from './exec.ts';
import type { Origin, OriginKind } from './origin.ts';
import { pidsMarkedWith } from './procstat.ts';
import type { Instance, System } from './systems.ts';

const DATASET = 'bench';
const WORKERS = 2;
const FUSE_ARGS = ['-okernel_cache', '-oattr_timeout=60', '-oentry_timeout=60', '-onegative_timeout=60'];

/** A Tide instance started through its real interfaces: `tide start`, `tide apply -f`, `tide stop`. */
export interface TideInstance extends Instance {
  home: string;
  /** The `tide` command and the environment that points it at this instance. */
  tideCommand: string;
  env: NodeJS.ProcessEnv;
  /** `tide` with this instance's TIDE_HOME and TIDE_MOUNT_ROOT. */
  cli(
    args: readonly string[],
    timeoutMs?: number,
  ): Promise<{ code: number | null; stdout: string; stderr: string }>;
}

type TierMedium = 'SSD' | 'MEM';

/** Thrown when Tide cannot be measured here; its message is the reason the report shows. */
export class TideUnavailableError extends Error {
  override readonly name = 'TideUnavailableError';
}

function manifests(
  origin: Origin,
  kind: OriginKind,
  tier: { medium: TierMedium; path: string; quota: string },
): string {
  const runtime = `---
apiVersion: data.fluid.io/v1alpha1
kind: TideRuntime
metadata:
  name: ${DATASET}
spec:
  replicas: ${WORKERS}
  tieredstore:
    levels:
      - mediumtype: ${tier.medium}
        path: ${tier.path}
        quota: ${tier.quota}
        high: "0.95"
        low: "0.8"
  fuse:
    args:
${FUSE_ARGS.map((arg) => `      - ${arg}`).join('\n')}
`;
  if (kind === 'http') {
    return `apiVersion: data.fluid.io/v1alpha1
kind: Dataset
metadata:
  name: ${DATASET}
spec:
  mounts:
    - mountPoint: ${origin.httpUrl}
      name: data
      path: /
  accessModes:
    - ReadOnlyMany
${runtime}`;
  }
  const s3 = origin.s3!;
  return `apiVersion: v1
kind: Secret
metadata:
  name: bench-s3
stringData:
  aws.accessKeyId: ${s3.accessKeyId}
  aws.secretKey: ${s3.secretAccessKey}
---
apiVersion: data.fluid.io/v1alpha1
kind: Dataset
metadata:
  name: ${DATASET}
spec:
  mounts:
    - mountPoint: s3://${s3.bucket}/
      name: data
      path: /
      options:
        s3.endpoint: ${s3.endpoint}
        s3.region: ${s3.region}
        s3.pathStyle: "true"
      encryptOptions:
        - name: aws.accessKeyId
          valueFrom:
            secretKeyRef:
              name: bench-s3
              key: aws.accessKeyId
        - name: aws.secretKey
          valueFrom:
            secretKeyRef:
              name: bench-s3
              key: aws.secretKey
  accessModes:
    - ReadOnlyMany
${runtime}`;
}

interface StatusView {
  phase: string;
  conditions: string;
}

function statusOf(json: string): StatusView {
  try {
    const resource = JSON.parse(json) as {
      status?: {
        phase?: string;
        conditions?: { type?: string; status?: string; reason?: string; message?: string }[];
      };
    };
    return {
      phase: resource.status?.phase ?? '',
      conditions: (resource.status?.conditions ?? [])
        .map((c) => `${c.type ?? '?'}=${c.status ?? '?'} ${c.reason ?? ''} ${c.message ?? ''}`.trim())
        .join('; '),
    };
  } catch {
    return { phase: '', conditions: `unparsable: ${json.slice(0, 200)}` };
  }
}

async function tail(path: string, lines: number): Promise<string> {
  const text = await readFile(path, 'utf8').catch(() => '');
  return text.trim().split('\n').slice(-lines).join('\n');
}

/** Tide's processes of one instance: the daemon, its workers and FUSE mount (not CLI calls). */
async function tidePids(home: string): Promise<number[]> {
  const pids = await pidsMarkedWith(home);
  const result: number[] = [];
  for (const pid of pids) {
    const cmdline = await readFile(`/proc/${pid}/cmdline`, 'latin1').catch(() => '');
    if (!cmdline.includes('cli/main.ts')) result.push(pid);
  }
  return result;
}

export interface TideSystemOptions {
  origin: Origin;
  kind: OriginKind;
  runDir: string;
  repo: string;
  /** Per-worker quota of the tier. */
  quota: string;
  /** The workers' one tier: SSD in the run directory (the default), or MEM in /dev/shm. */
  medium?: TierMedium;
  /** How long `tide apply` may take to get the Dataset Bound and mounted. */
  readyTimeoutMs: number;
}

export function tideSystem(options: TideSystemOptions): System {
  const { origin, kind } = options;
  const medium = options.medium ?? 'SSD';
  const tide = join(options.repo, 'bin', 'tide');
  const id = medium === 'SSD' ? `tide-${kind}` : `tide-${kind}-mem`;
  return {
    id,
    label: medium === 'SSD' ? `Tide (${kind})` : `Tide (${kind}, MEM tier)`,
    role: 'tide',
    origin: kind,
    options: `TideRuntime: ${WORKERS} workers, one ${medium} tier (quota ${options.quota} each${medium === 'MEM' ? ', in /dev/shm' : ''}), fuse args ${FUSE_ARGS.join(' ')}; Dataset accessModes ReadOnlyMany`,
    unavailable: () =>
      Promise.resolve(
        kind === 's3' && origin.s3 === undefined ? `no S3 origin: ${origin.s3Unavailable ?? '?'}` : undefined,
      ),
    start: (round) =>
      startTide({
        ...options,
        tide,
        home: join(options.runDir, `${id}-r${round}`),
        // tmpfs: dropping the page cache leaves it, as a MEM tier keeps its blocks.
        tierPath: medium === 'MEM' ? join('/dev/shm', `tide-bench-${id}-r${round}`) : undefined,
      }),
  };
}

async function startTide(
  options: TideSystemOptions & { tide: string; home: string; tierPath: string | undefined },
): Promise<TideInstance> {
  const { home, tide } = options;
  const tierPath = options.tierPath ?? join(home, 'cache');
  const mountRoot = join(home, 'mnt');
  const root = join(mountRoot, 'default', DATASET);
  await unmountAllUnder(home);
  await rm(home, { recursive: true, force: true });
  await rm(tierPath, { recursive: true, force: true });
  await mkdir(home, { recursive: true });
  const env = { ...process.env, TIDE_HOME: home, TIDE_MOUNT_ROOT: mountRoot };
  const cli = (args: readonly string[], timeoutMs = 60_000) =>
    run(tide, args, { timeoutMs, env, cwd: options.repo });

  const stop = async (): Promise<void> => {
    await cli(['stop'], 150_000).catch(() => undefined);
    // Whatever `tide stop` left behind: mounts under this home and processes that carry it.
    await unmountAllUnder(home);
    for (const signal of ['SIGTERM', 'SIGKILL'] as const) {
      const left = await pidsMarkedWith(home);
      for (const pid of left) {
        try {
          process.kill(pid, signal);
        } catch {
          // gone
        }
      }
      if (left.length === 0) break;
      await sleep(2000);
    }
    await unmountAllUnder(home);
    await rm(home, { recursive: true, force: true }).catch(() => undefined);
    await rm(tierPath, { recursive: true, force: true }).catch(() => undefined);
  };

  const started = process.hrtime.bigint();
  try {
    const start = await cli(['start'], 90_000);
    if (start.code !== 0)
      throw new TideUnavailableError(`tide start failed: ${(start.stderr || start.stdout).trim()}`);
    const manifestPath = join(home, 'bench.yaml');
    await writeFile(
      manifestPath,
      manifests(options.origin, options.kind, {
        medium: options.medium ?? 'SSD',
        path: tierPath,
        quota: options.quota,
      }),
    );
    const apply = await cli(['apply', '-f', manifestPath]);
    if (apply.code !== 0)
      throw new TideUnavailableError(`tide apply failed: ${(apply.stderr || apply.stdout).trim()}`);
    const deadline = Date.now() + options.readyTimeoutMs;
    // One watching CLI process, not a CLI started per poll: each start costs CPU the system measured
    // here would otherwise get.
    let last = await watchStatus(
      tide,
      env,
      ['dataset', DATASET],
      options.readyTimeoutMs,
      (view) => view.phase === 'Bound',
    );
    for (;;) {
      if (last.phase === 'Bound' && (await isMounted(root))) break;
      if (Date.now() > deadline) {
        const why = `dataset not Bound and mounted at ${root} within ${options.readyTimeoutMs / 1000} s (phase "${last.phase}"${last.conditions === '' ? '' : `; ${last.conditions}`})`;
        const log = await tail(join(home, 'logs', 'daemon.log'), 5);
        throw new TideUnavailableError(
          `${why}${log === '' ? '' : `; daemon log: ${log.replace(/\s+/g, ' ').slice(0, 600)}`}`,
        );
      }
      if (last.phase !== 'Bound') {
        last = await watchStatus(
          tide,
          env,
          ['dataset', DATASET],
          deadline - Date.now(),
          (view) => view.phase === 'Bound',
        );
      }
      await sleep(20);
    }
  } catch (error) {
    await stop();
    throw error;
  }
  return {
    home,
    root,
    readySeconds: Number(process.hrtime.bigint() - started) / 1e9,
    pids: () => tidePids(home),
    stop,
    cli: async (args, timeoutMs) => cli(args, timeoutMs),
    tideCommand: tide,
    env,
  };
}

export interface DataLoadResult {
  seconds: number;
  phase: string;
  detail: string;
}

/**
 * Applies a DataLoad of `target` and waits for it to finish; the time is apply → Complete. The
 * watch of all DataLoads starts before the apply (its first list shows the new one if the watch
 * comes up later), so its own start-up is not counted.
 */
export async function runDataLoad(
  instance: TideInstance,
  options: { name: string; target: string; timeoutMs: number },
): Promise<DataLoadResult> {
  const manifest = `apiVersion: data.fluid.io/v1alpha1
kind: DataLoad
metadata:
  name: ${options.name}
spec:
  dataset:
    name: ${DATASET}
    namespace: default
  target:
    - path: ${options.target}
      replicas: 1
`;
  const path = join(instance.home, `${options.name}.yaml`);
  await writeFile(path, manifest);
  const finished = watchStatus(
    instance.tideCommand,
    instance.env,
    ['dataload'],
    options.timeoutMs,
    (status) => status.phase === 'Complete' || status.phase === 'Failed',
    options.name,
  );
  const started = process.hrtime.bigint();
  const apply = await instance.cli(['apply', '-f', path]);
  if (apply.code !== 0) {
    void finished.catch(() => undefined);
    throw new TideUnavailableError(`DataLoad apply failed: ${(apply.stderr || apply.stdout).trim()}`);
  }
  const view = await finished;
  if (view.phase === 'Complete' || view.phase === 'Failed') {
    return {
      seconds: Number(view.atNs - started) / 1e9,
      phase: view.phase,
      detail: view.conditions,
    };
  }
  return { seconds: Number.NaN, phase: view.phase === '' ? 'timeout' : view.phase, detail: view.conditions };
}

/**
 * Follows `tide get KIND [NAME] -o json --watch` until an event's status (of the object `named`,
 * when the watch is of them all) satisfies `done`, or the time is up; gives the last status seen
 * either way, with the time it arrived.
 */
async function watchStatus(
  tide: string,
  env: NodeJS.ProcessEnv,
  what: readonly string[],
  timeoutMs: number,
  done: (view: StatusView) => boolean,
  named?: string,
): Promise<StatusView & { atNs: bigint }> {
  const child = spawn(tide, ['get', ...what, '-o', 'json', '--watch'], {
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let last: StatusView & { atNs: bigint } = { phase: '', conditions: '', atNs: 0n };
  const timer = setTimeout(() => child.kill('SIGKILL'), Math.max(0, timeoutMs));
  try {
    const lines = createInterface({ input: child.stdout });
    for await (const line of lines) {
      if (line.trim() === '') continue;
      const event = JSON.parse(line) as { object: { metadata?: { name?: string } } };
      if (named !== undefined && event.object.metadata?.name !== named) continue;
      last = { ...statusOf(JSON.stringify(event.object)), atNs: process.hrtime.bigint() };
      if (done(last)) break;
    }
    if (!done(last) && child.exitCode !== null && child.exitCode !== 0) {
      last = { ...last, conditions: `tide get --watch exited ${String(child.exitCode)}` };
    }
    return last;
  } finally {
    clearTimeout(timer);
    child.kill('SIGKILL');
  }
}
