import { spawn } from 'node:child_process';
import { mkdir, open, readFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { socketAnswers, type EmbeddedConfig } from '../embedded/index.ts';
import { DaemonClient } from './daemon-client.ts';
import { CliError } from './errors.ts';
import { ExitCode } from './exit-codes.ts';

const DAEMON_MAIN = fileURLToPath(new URL('../embedded/daemon-main.ts', import.meta.url));

async function waitFor(check: () => Promise<boolean>, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return true;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return false;
}

async function daemonPid(config: EmbeddedConfig): Promise<number | undefined> {
  try {
    return Number((await readFile(config.pidPath, 'utf8')).trim());
  } catch {
    return undefined;
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** `tide start`: runs the daemon detached unless one answers already. Idempotent. */
export async function startDaemonProcess(config: EmbeddedConfig, out: (line: string) => void): Promise<void> {
  if (await socketAnswers(config.socketPath)) {
    out(`Tide is already running (pid ${String(await daemonPid(config))}, home ${config.home})`);
    return;
  }
  await mkdir(dirname(config.logPath), { recursive: true, mode: 0o700 });
  const log = await open(config.logPath, 'a', 0o600);
  try {
    const child = spawn(process.execPath, [DAEMON_MAIN], {
      detached: true,
      stdio: ['ignore', log.fd, log.fd],
      env: {
        ...process.env,
        TIDE_HOME: config.home,
        TIDE_MOUNT_ROOT: config.mountRoot,
        NODE_COMPILE_CACHE: config.compileCacheDir,
      },
    });
    child.unref();
    const state = { exited: false };
    child.once('exit', () => {
      state.exited = true;
    });
    const up = await waitFor(async () => state.exited || (await socketAnswers(config.socketPath)), 30_000);
    if (!up || state.exited) {
      throw new CliError(
        'ERR_DAEMON_START',
        `the Tide daemon did not start; see ${config.logPath}`,
        ExitCode.failed,
      );
    }
    out(
      `Tide started (pid ${String(child.pid)}); state in ${config.home}, datasets mount under ${config.mountRoot}`,
    );
  } finally {
    await log.close();
  }
}

/** `tide stop`: asks the daemon to unmount everything and stop its workers, and waits for it. */
export async function stopDaemonProcess(
  config: EmbeddedConfig,
  out: (line: string) => void,
  timeoutMs = 120_000,
): Promise<void> {
  if (!(await socketAnswers(config.socketPath))) {
    out('Tide is not running');
    return;
  }
  const pid = await daemonPid(config);
  const client = new DaemonClient(config.socketPath);
  try {
    await client.call('POST', '/v1/shutdown');
  } finally {
    await client.close();
  }
  const gone = await waitFor(() => Promise.resolve(pid === undefined || !alive(pid)), timeoutMs);
  if (!gone)
    throw new CliError(
      'ERR_TIMEOUT',
      `the Tide daemon (pid ${String(pid)}) did not stop within ${timeoutMs / 1000}s`,
      ExitCode.failed,
    );
  out('Tide stopped: datasets unmounted, workers stopped');
}
