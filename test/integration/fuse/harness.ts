import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { createCipheriv, createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { SupervisorEvent } from '../../../src/fuse/index.ts';

const MOUNT_MAIN = join(import.meta.dirname, '..', '..', '..', 'src', 'fuse', 'mount-main.ts');

/** A mount-main.ts process serving `sourceDir` at `target`. */
export interface MountedDataset {
  target: string;
  sourceDir: string;
  events: SupervisorEvent[];
  /** The pid of mount-main.ts, the supervisor. */
  supervisorPid: number;
  /** The pid of the FUSE server process serving now. */
  serverPid(): number;
  /** Resolves with the first event (already seen or to come) for which `match` holds. */
  waitForEvent(
    match: (event: SupervisorEvent) => boolean,
    what: string,
    timeoutMs?: number,
  ): Promise<SupervisorEvent>;
  /** SIGTERM, then wait for a clean unmount; falls back to SIGKILL and `umount -l`. Idempotent. */
  stop(): Promise<void>;
  stderr(): string;
}

export interface StartMountOptions {
  sourceDir: string;
  fuseArgs?: string[];
  sourceOptions?: unknown;
  /** Mount here instead of on a fresh temporary directory (the caller removes it). */
  target?: string;
  /** Replaces the default `{ kind: 'local', dir: sourceDir }` source configuration. */
  source?: Record<string, unknown>;
  logLevel?: string;
  deviceIo?: 'epoll' | 'threadpool';
  readers?: number;
}

/**
 * Last line of defence: a test that dies before its cleanup must not leave a mount behind (a dead
 * FUSE mount breaks every later `stat` of its parent). Runs synchronously when the process exits.
 */
const live = new Map<string, { supervisorPid: number | undefined; serverPid: () => number | undefined }>();
process.on('exit', () => {
  for (const [target, pids] of live) {
    const server = pids.serverPid();
    if (server !== undefined) spawnSync('kill', ['-9', String(server)]);
    if (pids.supervisorPid !== undefined) spawnSync('kill', ['-9', String(pids.supervisorPid)]);
    spawnSync('umount', ['-l', target]);
  }
});

export async function isMounted(target: string): Promise<boolean> {
  const mounts = await readFile('/proc/self/mounts', 'utf8');
  return mounts.split('\n').some((line) => line.split(' ')[1] === target);
}

/** Starts a supervised mount of `sourceDir` on a fresh temporary directory and waits until it serves. */
export async function startMount(options: StartMountOptions): Promise<MountedDataset> {
  const work = await mkdtemp(join(tmpdir(), 'tide-fuse-mnt-'));
  const target = options.target ?? join(work, 'mnt');
  const configPath = join(work, 'mount.json');
  await writeFile(
    configPath,
    JSON.stringify({
      target,
      fuseArgs: options.fuseArgs ?? [],
      source: options.source ?? {
        kind: 'local',
        dir: options.sourceDir,
        ...(options.sourceOptions === undefined ? {} : { options: options.sourceOptions }),
      },
      logLevel: options.logLevel ?? 'warn',
      ...(options.readers === undefined ? {} : { readers: options.readers }),
      ...(options.deviceIo === undefined ? {} : { deviceIo: options.deviceIo }),
    }),
  );
  const child: ChildProcess = spawn(
    process.execPath,
    ['--disable-warning=ExperimentalWarning', MOUNT_MAIN, configPath],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  const events: SupervisorEvent[] = [];
  const waiters = new Set<() => void>();
  let stderr = '';
  let buffered = '';
  let exited = false;
  const exit = new Promise<void>((resolve) => {
    child.on('exit', () => {
      exited = true;
      resolve();
      for (const waiter of waiters) waiter();
    });
  });
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk;
  });
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
    buffered += chunk;
    let newline = buffered.indexOf('\n');
    while (newline !== -1) {
      events.push(JSON.parse(buffered.slice(0, newline)) as SupervisorEvent);
      buffered = buffered.slice(newline + 1);
      newline = buffered.indexOf('\n');
    }
    for (const waiter of waiters) waiter();
  });

  const waitForEvent = (
    match: (event: SupervisorEvent) => boolean,
    what: string,
    timeoutMs = 20_000,
  ): Promise<SupervisorEvent> =>
    new Promise((resolve, reject) => {
      const check = (): void => {
        const found = events.find(match);
        if (found !== undefined) {
          cleanup();
          resolve(found);
        } else if (exited) {
          cleanup();
          reject(new Error(`mount process exited while waiting for ${what}; stderr:\n${stderr}`));
        }
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}; stderr:\n${stderr}`));
      }, timeoutMs);
      const cleanup = (): void => {
        clearTimeout(timer);
        waiters.delete(check);
      };
      waiters.add(check);
      check();
    });

  live.set(target, {
    supervisorPid: child.pid,
    serverPid: () => {
      const started = events.findLast((event) => event.event === 'server-started');
      return started?.event === 'server-started' ? started.pid : undefined;
    },
  });
  let stopped: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopped ??= (async () => {
      if (!exited) child.kill('SIGTERM');
      const timeout = new Promise<'timeout'>((resolve) => {
        setTimeout(() => {
          resolve('timeout');
        }, 20_000).unref();
      });
      if ((await Promise.race([exit, timeout])) === 'timeout') {
        const server = events.findLast((event) => event.event === 'server-started');
        if (server?.event === 'server-started') spawnSync('kill', ['-9', String(server.pid)]);
        child.kill('SIGKILL');
      }
      if (await isMounted(target)) spawnSync('umount', ['-l', target]);
      live.delete(target);
      await rm(work, { recursive: true, force: true });
    })();
    return stopped;
  };

  try {
    await waitForEvent((event) => event.event === 'ready', 'the mount to be ready');
  } catch (error) {
    await stop();
    throw error;
  }
  return {
    target,
    sourceDir: options.sourceDir,
    events,
    supervisorPid: child.pid ?? -1,
    serverPid: () => {
      const started = events.findLast((event) => event.event === 'server-started');
      if (started?.event !== 'server-started') throw new Error('no server started');
      return started.pid;
    },
    waitForEvent,
    stop,
    stderr: () => stderr,
  };
}

export interface RunResult {
  code: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
}

/** Runs a command to completion (killed after `timeoutMs`), collecting its output as text. */
export function run(
  command: string,
  args: readonly string[],
  options: { cwd?: string; timeoutMs?: number; shell?: boolean } = {},
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      cwd: options.cwd,
      stdio: ['ignore', 'pipe', 'pipe'],
      shell: options.shell ?? false,
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk;
    });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk;
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 60_000);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

/** A shell pipeline, run with bash -o pipefail so that a failing stage fails the whole. */
export function sh(script: string, options: { cwd?: string; timeoutMs?: number } = {}): Promise<RunResult> {
  return run('bash', ['-o', 'pipefail', '-c', script], options);
}

/** `length` pseudo-random bytes that depend only on `seed` (AES-256-CTR over zeros). */
export function deterministicBytes(seed: string, length: number): Buffer {
  const key = createHash('sha256').update(seed).digest();
  const cipher = createCipheriv('aes-256-ctr', key, Buffer.alloc(16));
  return Buffer.concat([cipher.update(Buffer.alloc(length)), cipher.final()]);
}

export async function makeTempDir(prefix: string): Promise<string> {
  return mkdtemp(join(tmpdir(), prefix));
}
