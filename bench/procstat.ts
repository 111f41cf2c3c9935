import { readdir, readFile } from 'node:fs/promises';

/** Linux reports utime/stime in clock ticks; USER_HZ is 100 on every architecture Node runs on. */
const TICKS_PER_SECOND = 100;

/** User + system CPU seconds of one process so far, or undefined when it is gone. */
export async function cpuSecondsOf(pid: number): Promise<number | undefined> {
  const text = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => undefined);
  if (text === undefined) return undefined;
  // proc(5): the command name (field 2) may hold spaces and parentheses; fields after the last ')'.
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  // Fields 14 and 15 (utime, stime) are the 12th and 13th after the state (field 3).
  return (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND;
}

/** Peak resident set (VmHWM) of one process in bytes, or undefined when it is gone. */
export async function peakRssBytesOf(pid: number): Promise<number | undefined> {
  const text = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => undefined);
  const match = text === undefined ? null : /^VmHWM:\s+(\d+) kB$/m.exec(text);
  return match === null ? undefined : Number(match[1]) * 1024;
}

/** Sum of CPU seconds of processes; a process that exited between samples counts as 0. */
export async function cpuSecondsOfAll(pids: readonly number[]): Promise<Map<number, number>> {
  const result = new Map<number, number>();
  for (const pid of pids) {
    const seconds = await cpuSecondsOf(pid);
    if (seconds !== undefined) result.set(pid, seconds);
  }
  return result;
}

/** CPU seconds spent between two samples by the processes present in the second one. */
export function cpuDelta(before: ReadonlyMap<number, number>, after: ReadonlyMap<number, number>): number {
  let total = 0;
  for (const [pid, seconds] of after) total += seconds - (before.get(pid) ?? 0);
  return total;
}

/**
 * PIDs of the processes whose environment or command line holds `marker` (a path unique to one
 * benchmark instance, such as its TIDE_HOME): the detached processes of a daemon that the harness
 * did not start itself.
 */
export async function pidsMarkedWith(marker: string): Promise<number[]> {
  const pids: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    if (pid === process.pid) continue;
    const [environ, cmdline] = await Promise.all([
      readFile(`/proc/${pid}/environ`, 'latin1').catch(() => ''),
      readFile(`/proc/${pid}/cmdline`, 'latin1').catch(() => ''),
    ]);
    if (environ.includes(marker) || cmdline.includes(marker)) pids.push(pid);
  }
  return pids;
}

/** Short name of a process for the report: its TypeScript entry point, else its `comm`. */
export async function commandOf(pid: number): Promise<string> {
  const cmdline = await readFile(`/proc/${pid}/cmdline`, 'latin1').catch(() => '');
  const script = cmdline.split('\0').find((arg) => arg.endsWith('.ts'));
  if (script !== undefined) return script.split('/').pop() ?? script;
  const comm = await readFile(`/proc/${pid}/comm`, 'utf8').catch(() => '');
  return comm.trim() === '' ? String(pid) : comm.trim();
}

/** `pid` and every process below it (JuiceFS, for one, serves its mount from a child process). */
export async function processTreeOf(pid: number): Promise<number[]> {
  const parents = new Map<number, number[]>();
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const text = await readFile(`/proc/${entry}/stat`, 'utf8').catch(() => undefined);
    if (text === undefined) continue;
    // proc(5): field 4 (ppid) is the second after the command name's closing parenthesis.
    const parent = Number(text.slice(text.lastIndexOf(')') + 2).split(' ')[1]);
    const children = parents.get(parent) ?? [];
    children.push(Number(entry));
    parents.set(parent, children);
  }
  const result: number[] = [];
  const queue = [pid];
  while (queue.length > 0) {
    const next = queue.shift()!;
    result.push(next);
    queue.push(...(parents.get(next) ?? []));
  }
  return result;
}
