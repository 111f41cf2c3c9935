import { spawn } from 'node:child_process';
import { mkdir, open, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../../lib/index.ts';

/** A long-running local process the platform keeps alive: a cache worker or a FUSE mount. */
export interface ProcessSpec {
  /** Unique and stable, e.g. `default-hbase-worker-0`. */
  id: string;
  /** Absolute path of the TypeScript entry point, run with this Node. */
  entry: string;
  args: readonly string[];
  /** Where standard output and error go (appended). */
  logPath: string;
  env?: Readonly<Record<string, string>>;
}

interface Record_ {
  pid: number;
  /** Start time of the process in clock ticks since boot; tells a reused PID from ours. */
  startTicks: number;
  spec: ProcessSpec;
}

interface Managed {
  spec: ProcessSpec;
  pid: number;
  startTicks: number;
  /** Consecutive quick failures, for the restart backoff. */
  failures: number;
  startedAtMs: number;
  timer?: NodeJS.Timeout;
  wanted: boolean;
  /** How the last run ended, while the process is being restarted or after. */
  lastExit?: ProcessExit;
}

/** How a supervised process ended: exit code or signal (`gone` when an adopted one vanished). */
export interface ProcessExit {
  code: number | null;
  signal: string | null;
  /** Consecutive quick failures so far (a run of over 30 s resets it). */
  failures: number;
}

export interface ProcessSupervisorOptions {
  /** Directory of the process records, so that a restarted daemon re-adopts what runs. */
  stateDir: string;
  logger: Logger;
  /** How often liveness is checked. */
  pollMs?: number;
}

/**
 * Starts processes detached (their own session, output to a log file, so they outlive a crash of
 * the daemon), records them, re-adopts them after a daemon restart, and restarts them with
 * exponential backoff when they die. PIDs are checked together with their start time.
 */
export class ProcessSupervisor {
  readonly #options: ProcessSupervisorOptions;
  readonly #managed = new Map<string, Managed>();
  readonly #poller: NodeJS.Timeout;

  constructor(options: ProcessSupervisorOptions) {
    this.#options = options;
    this.#poller = setInterval(() => {
      this.#checkAll();
    }, options.pollMs ?? 1000);
    this.#poller.unref();
  }

  /** Re-adopts the recorded processes that still run; forgets the others. Returns the adopted ids. */
  async adopt(): Promise<string[]> {
    await mkdir(this.#options.stateDir, { recursive: true, mode: 0o700 });
    const adopted: string[] = [];
    for (const file of await readdir(this.#options.stateDir)) {
      if (!file.endsWith('.json')) continue;
      const path = join(this.#options.stateDir, file);
      try {
        const record = JSON.parse(await readFile(path, 'utf8')) as Record_;
        if ((await startTicksOf(record.pid)) === record.startTicks) {
          this.#managed.set(record.spec.id, {
            ...record,
            failures: 0,
            startedAtMs: Date.now(),
            wanted: true,
          });
          adopted.push(record.spec.id);
        } else {
          await rm(path, { force: true });
        }
      } catch {
        await rm(path, { force: true });
      }
    }
    if (adopted.length > 0) this.#options.logger.info({ adopted }, 're-adopted running processes');
    return adopted;
  }

  /** Starts the process unless it runs with the same spec; a changed spec restarts it. */
  async ensure(spec: ProcessSpec): Promise<number> {
    const current = this.#managed.get(spec.id);
    if (current !== undefined && JSON.stringify(current.spec) === JSON.stringify(spec)) {
      current.wanted = true;
      return current.pid;
    }
    if (current !== undefined) await this.stop(spec.id);
    return this.#start(spec, 0);
  }

  pidOf(id: string): number | undefined {
    return this.#managed.get(id)?.pid;
  }

  /** How the process last ended, if it ever did under this supervisor. */
  lastExitOf(id: string): ProcessExit | undefined {
    return this.#managed.get(id)?.lastExit;
  }

  ids(prefix = ''): string[] {
    return [...this.#managed.keys()].filter((id) => id.startsWith(prefix));
  }

  /** SIGTERM, then SIGKILL after `graceMs`; resolves when the process is gone. */
  async stop(id: string, graceMs = 10_000): Promise<void> {
    const managed = this.#managed.get(id);
    if (managed === undefined) return;
    managed.wanted = false;
    clearTimeout(managed.timer);
    this.#managed.delete(id);
    await rm(this.#recordPath(id), { force: true });
    await terminate(managed.pid, managed.startTicks, graceMs);
  }

  async stopAll(prefix = ''): Promise<void> {
    await Promise.all(this.ids(prefix).map((id) => this.stop(id)));
  }

  /** Stops polling; the processes keep running (the daemon is going away, not the runtimes). */
  detach(): void {
    clearInterval(this.#poller);
    for (const managed of this.#managed.values()) clearTimeout(managed.timer);
  }

  async #start(spec: ProcessSpec, failures: number): Promise<number> {
    const log = await open(spec.logPath, 'a', 0o600);
    try {
      const child = spawn(process.execPath, [spec.entry, ...spec.args], {
        detached: true,
        stdio: ['ignore', log.fd, log.fd],
        env: { ...process.env, ...spec.env },
      });
      const pid = child.pid;
      if (pid === undefined) {
        throw await new Promise<Error>((resolve) => child.once('error', resolve));
      }
      child.unref();
      const startTicks = (await startTicksOf(pid)) ?? 0;
      const lastExit = this.#managed.get(spec.id)?.lastExit;
      const managed: Managed = {
        spec,
        pid,
        startTicks,
        failures,
        startedAtMs: Date.now(),
        wanted: true,
        ...(failures > 0 && lastExit !== undefined ? { lastExit } : {}),
      };
      this.#managed.set(spec.id, managed);
      child.once('exit', (code, signal) => {
        this.#onExit(spec.id, pid, code, signal);
      });
      await writeFile(
        this.#recordPath(spec.id),
        JSON.stringify({ pid, startTicks, spec } satisfies Record_),
        { mode: 0o600 },
      );
      this.#options.logger.info({ id: spec.id, pid }, 'process started');
      return pid;
    } finally {
      await log.close();
    }
  }

  #onExit(id: string, pid: number, code: number | null, signal: string | null): void {
    const managed = this.#managed.get(id);
    if (managed?.pid !== pid || !managed.wanted) return;
    const ranMs = Date.now() - managed.startedAtMs;
    const failures = ranMs > 30_000 ? 0 : managed.failures + 1;
    const delayMs = Math.min(200 * 2 ** failures, 30_000);
    this.#options.logger.warn({ id, pid, code, signal, restartInMs: delayMs }, 'process exited; restarting');
    managed.pid = -1;
    managed.lastExit = { code, signal, failures };
    managed.timer = setTimeout(() => {
      if (this.#managed.get(id) !== managed || !managed.wanted) return;
      this.#start(managed.spec, failures).catch((error: unknown) => {
        this.#options.logger.error({ id, err: error }, 'restart failed');
      });
    }, delayMs);
  }

  /** Adopted processes are not our children: their death is seen by polling. */
  #checkAll(): void {
    for (const [id, managed] of this.#managed) {
      if (managed.pid <= 0 || !managed.wanted) continue;
      void startTicksOf(managed.pid).then((ticks) => {
        if (ticks !== managed.startTicks) this.#onExit(id, managed.pid, null, 'gone');
      });
    }
  }

  #recordPath(id: string): string {
    return join(this.#options.stateDir, `${id}.json`);
  }
}

/** Field 22 of /proc/<pid>/stat, or undefined when the process does not exist (or is a zombie). */
export async function startTicksOf(pid: number): Promise<number | undefined> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (fields[0] === 'Z') return undefined;
    return Number(fields[19]);
  } catch {
    return undefined;
  }
}

async function terminate(pid: number, startTicks: number, graceMs: number): Promise<void> {
  if (pid <= 0 || (await startTicksOf(pid)) !== startTicks) return;
  signalProcess(pid, 'SIGTERM');
  const deadline = Date.now() + graceMs;
  while (Date.now() < deadline) {
    if ((await startTicksOf(pid)) !== startTicks) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  signalProcess(pid, 'SIGKILL');
  while ((await startTicksOf(pid)) === startTicks) await new Promise((resolve) => setTimeout(resolve, 50));
}

function signalProcess(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // already gone
  }
}
