/** What the embedded-mode e2e tests share: the `tide` CLI on a home of their own, and bounded waits. */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
const CLI = join(import.meta.dirname, '..', '..', 'src', 'cli', 'main.ts');

/** `tide ARGS` with `TIDE_HOME=home` (mounts under `home/mnt`); resolves to its standard output. */
export function tideIn(home: string): (...args: string[]) => Promise<string> {
  return async (...args) => {
    const { stdout } = await run(process.execPath, [CLI, ...args], {
      env: { ...process.env, TIDE_HOME: home, TIDE_MOUNT_ROOT: join(home, 'mnt') },
      timeout: 120_000,
    });
    return stdout;
  };
}

/** Probes every 200 ms until it gives a value (a probe that throws counts as not yet). */
export async function until<T>(
  what: string,
  probe: () => Promise<T | undefined>,
  timeoutMs = 60_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe().catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}
