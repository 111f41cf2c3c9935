import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { closeSync } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../lib/index.ts';
import { toError } from '../lib/index.ts';
import type { MountConfig, SourceConfig, ValidMountConfig } from './config.ts';
import { validateMountConfig } from './config.ts';
import { FuseError } from './errors.ts';
import { clearStaleMount, mountFuse, openFuseDevice, setReadAhead, unmount } from './mount.ts';
import { parseFuseArgs } from './options.ts';

/** argv[2] of server-main.ts. */
export interface ServerProcessConfig {
  fuseArgs: string[];
  source: SourceConfig;
  stateDir: string;
  resume: boolean;
  deviceIo: 'epoll' | 'threadpool';
  readers: number;
  logLevel?: MountConfig['logLevel'];
}

/** What the supervisor reports as it goes (mount-main.ts prints them as JSON lines). */
export type SupervisorEvent =
  | { event: 'mounted'; target: string }
  | { event: 'server-started'; pid: number; restarts: number }
  | { event: 'ready'; target: string; pid: number; restarts: number }
  | { event: 'server-exited'; pid: number; code: number | null; signal: string | null }
  | { event: 'unmounted'; target: string };

export interface SupervisorOptions {
  config: MountConfig | ValidMountConfig;
  logger: Logger;
  /** Aborting it unmounts and stops (mount-main.ts aborts on SIGTERM and SIGINT). */
  signal: AbortSignal;
  onEvent?: (event: SupervisorEvent) => void;
  /** How long the first server may take to answer INIT; default 30 s. */
  startTimeoutMs?: number;
}

const SERVER_ENTRY = join(import.meta.dirname, 'server-main.ts');
const MAX_BACKOFF_MS = 5000;
/** A server that lived this long resets the count of quick deaths. */
const HEALTHY_UPTIME_MS = 30_000;
/**
 * Restarts are immediate — every moment without a server is a stalled application — until this
 * many servers in a row died young (a poison request resent to each, a broken source); then they
 * back off exponentially so that a crash loop does not eat the machine.
 */
const QUICK_DEATHS_BEFORE_BACKOFF = 20;

/**
 * Holds the /dev/fuse descriptor and the mount, and runs the FUSE server as a child process that
 * shares the descriptor. When the server dies (a crash, SIGKILL, OOM) the kernel connection stays
 * up — the supervisor's copy of the descriptor keeps it — so applications see a pause, not ENOTCONN.
 * The restarted server resumes from the INIT parameters and node journal in `stateDir` and asks the
 * kernel to resend the requests the dead one had read (FUSE_NOTIFY_RESEND, Linux 6.9+).
 * Resolves after a clean unmount.
 * @throws {FuseError} when the mount cannot be made or the first server never becomes ready.
 */
export async function runSupervisor(options: SupervisorOptions): Promise<void> {
  const config = validateMountConfig(options.config);
  const logger = options.logger.child({ component: 'fuse', role: 'supervisor', target: config.target });
  const emit = (event: SupervisorEvent): void => options.onEvent?.(event);
  const parsed = parseFuseArgs(config.fuseArgs);
  if (parsed.unknown.length > 0) logger.warn({ unknown: parsed.unknown }, 'unknown FUSE options ignored');
  const setup = new AbortController();

  // Before mkdir: on a dead mount even mkdir -p fails with ENOTCONN.
  if (await clearStaleMount(config.target, setup.signal)) {
    logger.warn('cleared a stale mount (ENOTCONN) at the target');
  }
  await mkdir(config.target, { recursive: true });
  await rm(config.stateDir, { recursive: true, force: true });
  await mkdir(config.stateDir, { recursive: true, mode: 0o700 });

  const fd = openFuseDevice();
  try {
    await mountFuse({ fd, target: config.target, options: parsed.options, signal: setup.signal });
  } catch (error) {
    closeSync(fd);
    throw error;
  }
  emit({ event: 'mounted', target: config.target });

  let child: ChildProcess | undefined;
  let restarts = 0;
  let everReady = false;
  let stopping = false;
  let quickDeaths = 0;
  const done = Promise.withResolvers<undefined>();
  const firstReady = Promise.withResolvers<undefined>();
  let childExited: Promise<undefined> = Promise.resolve(undefined);

  const start = (resume: boolean): void => {
    const processConfig: ServerProcessConfig = {
      fuseArgs: config.fuseArgs,
      source: config.source,
      stateDir: config.stateDir,
      resume,
      deviceIo: config.deviceIo,
      readers: config.readers,
      ...(config.logLevel === undefined ? {} : { logLevel: config.logLevel }),
    };
    const startedAt = Date.now();
    const server = spawn(
      process.execPath,
      ['--disable-warning=ExperimentalWarning', SERVER_ENTRY, JSON.stringify(processConfig)],
      {
        // fd 3 is the very same open /dev/fuse file: the kernel connection outlives the child.
        stdio: ['ignore', 'inherit', 'inherit', fd, 'ipc'],
        env: { ...process.env, UV_THREADPOOL_SIZE: String(config.threadpoolSize) },
      },
    );
    child = server;
    const exited = Promise.withResolvers<undefined>();
    childExited = exited.promise;
    const pid = server.pid ?? -1;
    emit({ event: 'server-started', pid, restarts });
    server.on('message', (message: { type?: string }) => {
      if (message.type !== 'ready') return;
      if (everReady) {
        emit({ event: 'ready', target: config.target, pid, restarts });
      } else {
        everReady = true;
        firstReady.resolve(undefined);
      }
    });
    server.on('exit', (code, signal) => {
      exited.resolve(undefined);
      emit({ event: 'server-exited', pid, code, signal });
      if (stopping) return;
      if (!everReady) {
        firstReady.reject(
          new FuseError(
            'ERR_FUSE_MOUNT',
            `The FUSE server exited before it was ready (code ${code}, signal ${signal})`,
          ),
        );
        return;
      }
      logger.error({ code, signal, pid }, 'FUSE server died; restarting it on the same connection');
      quickDeaths = Date.now() - startedAt > HEALTHY_UPTIME_MS ? 0 : quickDeaths + 1;
      const excess = quickDeaths - QUICK_DEATHS_BEFORE_BACKOFF;
      const delayMs = excess <= 0 ? 0 : Math.min(MAX_BACKOFF_MS, 100 * 2 ** Math.min(excess, 10));
      restarts += 1;
      setTimeout(() => {
        if (!stopping) start(true);
      }, delayMs);
    });
  };

  const shutdown = async (): Promise<void> => {
    if (stopping) return;
    stopping = true;
    try {
      await unmount(config.target, { signal: AbortSignal.timeout(30_000) });
      emit({ event: 'unmounted', target: config.target });
    } catch (error) {
      logger.error({ err: toError(error) }, 'unmount failed');
    }
    // After the unmount the server's reads end with ENODEV and it exits by itself.
    const killTimer = setTimeout(() => child?.kill('SIGKILL'), 5000);
    await childExited;
    clearTimeout(killTimer);
    closeSync(fd);
    await rm(config.stateDir, { recursive: true, force: true });
    done.resolve(undefined);
  };

  const onAbort = (): void => {
    shutdown().catch((error: unknown) => {
      done.reject(error);
    });
  };
  if (options.signal.aborted) onAbort();
  else options.signal.addEventListener('abort', onAbort, { once: true });

  start(false);
  const timeout = setTimeout(() => {
    firstReady.reject(new FuseError('ERR_FUSE_MOUNT', 'The FUSE server did not answer INIT in time'));
  }, options.startTimeoutMs ?? 30_000);
  try {
    await firstReady.promise;
  } catch (error) {
    clearTimeout(timeout);
    child?.kill('SIGKILL');
    await shutdown();
    throw error;
  }
  clearTimeout(timeout);
  if (
    parsed.options.readAheadKb !== undefined &&
    !(await setReadAhead(config.target, parsed.options.readAheadKb))
  ) {
    logger.warn('could not set read_ahead_kb of the mount');
  }
  logger.info({ pid: child?.pid }, 'mounted and serving');
  emit({ event: 'ready', target: config.target, pid: child?.pid ?? -1, restarts });
  await done.promise;
  options.signal.removeEventListener('abort', onAbort);
}
