import { spawn, type ChildProcess } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { basename } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

export interface RunOptions {
  timeoutMs: number;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  input?: string;
  /** Discard standard output (large listings) instead of collecting it. */
  discardStdout?: boolean;
}

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
  /** Wall time from spawn to exit. */
  seconds: number;
}

/**
 * Runs a command in its own process group and kills the whole group when `timeoutMs` passes, so a
 * stuck FUSE read cannot hang the harness. Rejects on timeout; resolves with the exit code otherwise.
 */
export async function run(command: string, args: readonly string[], options: RunOptions): Promise<RunResult> {
  const started = process.hrtime.bigint();
  const child = spawn(command, args, {
    detached: true,
    env: options.env ?? process.env,
    cwd: options.cwd,
    stdio: [
      options.input === undefined ? 'ignore' : 'pipe',
      options.discardStdout === true ? 'ignore' : 'pipe',
      'pipe',
    ],
  });
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    stdout += chunk.toString();
  });
  child.stderr?.on('data', (chunk: Buffer) => {
    if (stderr.length < 64 * 1024) stderr += chunk.toString();
  });
  if (options.input !== undefined) child.stdin?.end(options.input);
  const state = { timedOut: false };
  const timer = setTimeout(() => {
    state.timedOut = true;
    killGroup(child);
  }, options.timeoutMs);
  try {
    const code = await new Promise<number | null>((resolve, reject) => {
      child.once('error', reject);
      child.once('close', (exitCode) => {
        resolve(exitCode);
      });
    });
    if (state.timedOut) {
      throw new Error(`${command} ${args.join(' ')} timed out after ${options.timeoutMs} ms`);
    }
    return { code, stdout, stderr, seconds: Number(process.hrtime.bigint() - started) / 1e9 };
  } finally {
    clearTimeout(timer);
  }
}

/** Like `run`, but rejects unless the command exits with 0. */
export async function runOk(
  command: string,
  args: readonly string[],
  options: RunOptions,
): Promise<RunResult> {
  const result = await run(command, args, options);
  if (result.code !== 0) {
    throw new Error(
      `${basename(command)} ${args.join(' ').slice(0, 160)} exited with ${String(result.code)}: ${result.stderr.trim().slice(-1500)}`,
    );
  }
  return result;
}

export function killGroup(child: ChildProcess, signal: NodeJS.Signals = 'SIGKILL'): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    // already gone
  }
}

/** Drops clean page cache, dentries and inodes (root only). Data sets are clean, so no `sync`. */
export async function dropCaches(): Promise<void> {
  await writeFile('/proc/sys/vm/drop_caches', '3');
}

/** Mount points (field 5 of mountinfo, with octal escapes decoded) and their file system types. */
export async function mounts(): Promise<{ target: string; fsType: string }[]> {
  const text = await readFile('/proc/self/mountinfo', 'utf8');
  const decode = (value: string): string =>
    value.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8)));
  return text
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => {
      const fields = line.split(' ');
      const separator = fields.indexOf('-');
      return { target: decode(fields[4] ?? ''), fsType: fields[separator + 1] ?? '' };
    });
}

export async function isMounted(target: string): Promise<boolean> {
  return (await mounts()).some((mount) => mount.target === target);
}

/** Polls until `target` is a mount point; `failed()` ends the wait early with the reason it returns. */
export async function waitForMount(
  target: string,
  options: { timeoutMs: number; what: string; failed?: () => string | undefined },
): Promise<void> {
  const deadline = Date.now() + options.timeoutMs;
  for (;;) {
    if (await isMounted(target)) return;
    const failure = options.failed?.();
    if (failure !== undefined) throw new Error(`${options.what} did not mount: ${failure}`);
    if (Date.now() > deadline)
      throw new Error(`${options.what} did not mount ${target} within ${options.timeoutMs} ms`);
    await sleep(100);
  }
}

/** Unmounts `target` if mounted: `fusermount3 -u`, then a lazy unmount when that fails. */
export async function unmount(target: string): Promise<void> {
  if (!(await isMounted(target))) return;
  await run('fusermount3', ['-u', target], { timeoutMs: 20_000 }).catch(() => undefined);
  if (await isMounted(target))
    await run('umount', ['-l', target], { timeoutMs: 20_000 }).catch(() => undefined);
}

/** Unmounts every mount under `dir` (deepest first). */
export async function unmountAllUnder(dir: string): Promise<string[]> {
  const found = (await mounts())
    .map((mount) => mount.target)
    .filter((target) => target === dir || target.startsWith(`${dir}/`))
    .sort((a, b) => b.length - a.length);
  for (const target of found) await unmount(target);
  return found;
}

/** The environment for peer processes: without AWS_CA_BUNDLE, which rclone 1.60 rejects for plain HTTP. */
export function peerEnv(extra: Readonly<Record<string, string>> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, ...extra };
  delete env['AWS_CA_BUNDLE'];
  return env;
}
