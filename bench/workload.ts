import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Profile } from './config.ts';
import type { DataSet } from './datasets.ts';
import { dropCaches, run, runOk } from './exec.ts';
import { bytesFor, type Origin } from './origin.ts';
import { commandOf, cpuDelta, cpuSecondsOfAll, peakRssBytesOf } from './procstat.ts';
import type { ReaderResult, ReaderSpec } from './reader.ts';
import { median, type Results } from './results.ts';
import type { Instance, System } from './systems.ts';

const READER = join(import.meta.dirname, 'reader.ts');

export interface WorkloadContext {
  profile: Profile;
  data: DataSet;
  origin: Origin;
  results: Results;
  /** Scratch directory for file lists and curl configurations. */
  workDir: string;
  log: (line: string) => void;
}

/** Runs bench/reader.ts in a child process (killed after `timeoutMs`). */
export async function reader(spec: ReaderSpec, timeoutMs: number): Promise<ReaderResult> {
  const result = await runOk(process.execPath, [READER, JSON.stringify(spec)], {
    timeoutMs,
    env: { ...process.env, UV_THREADPOOL_SIZE: '16' },
  });
  return JSON.parse(result.stdout) as ReaderResult;
}

/** Reads a file front to back with 1 MiB reads (`dd`); returns seconds. */
async function sequentialRead(path: string, sizeBytes: number): Promise<number> {
  const result = await runOk('dd', [`if=${path}`, 'of=/dev/null', 'bs=1M', 'status=none'], {
    timeoutMs: 120_000 + (sizeBytes / 5e6) * 1000,
  });
  return result.seconds;
}

/**
 * Reads `path` as a disk tier's blocks are read: O_DIRECT, 4 MiB at a time, four in flight (fio).
 * The limit of any cache that keeps the file on this disk, page cache or not. Seconds.
 */
async function directRead(path: string, sizeBytes: number): Promise<number> {
  const result = await runOk(
    'fio',
    [
      '--name=direct',
      `--filename=${path}`,
      '--readonly',
      '--rw=read',
      '--bs=4M',
      '--direct=1',
      '--ioengine=libaio',
      '--iodepth=4',
      '--output-format=json',
    ],
    { timeoutMs: 120_000 + (sizeBytes / 5e6) * 1000 },
  );
  const job = (JSON.parse(result.stdout) as { jobs: { read: { io_bytes: number; runtime: number } }[] })
    .jobs[0];
  if (job === undefined || job.read.io_bytes !== sizeBytes)
    throw new Error(`fio did not read all of ${path}`);
  return job.read.runtime / 1000;
}

const MB = 1e6;

async function smallFileList(ctx: WorkloadContext): Promise<string> {
  const path = join(ctx.workDir, 'small-files.txt');
  await writeFile(path, `${ctx.data.smallFiles.join('\n')}\n`);
  return path;
}

function ttfbPaths(ctx: WorkloadContext, root: string): string[] {
  return ctx.data.smallFiles.slice(-ctx.profile.ttfbFiles).map((path) => join(root, path));
}

function timeoutFor(items: number, perItemMs: number): number {
  return 120_000 + items * perItemMs;
}

/**
 * One round on a fresh instance of a FUSE system (caches empty): every read metric in an order where
 * each step finds the caches it is defined for. Origin bytes are taken from the nginx log after the
 * instance stopped, so that every request the system made is logged.
 */
export async function measureMountRound(
  system: System,
  instance: Instance,
  ctx: WorkloadContext,
): Promise<void> {
  const { data, profile, results } = ctx;
  const id = system.id;
  const root = instance.root;
  results.record(id, 'ready', instance.readySeconds);

  await dropCaches();
  const ttfbCold = await reader(
    { kind: 'ttfb', paths: ttfbPaths(ctx, root) },
    timeoutFor(profile.ttfbFiles, 10_000),
  );
  results.record(id, 'ttfbCold', median(ttfbCold.seconds) * 1000);

  const model = join(root, data.model);
  const byWindow = system.amplificationByWindow === true;
  const modelMark = byWindow ? (await settledRecords(ctx.origin)).length : 0;
  const cpu0 = await cpuSecondsOfAll(await instance.pids());
  results.record(id, 'coldRead', data.modelBytes / MB / (await sequentialRead(model, data.modelBytes)));
  await dropCaches();
  results.record(id, 'warmRead', data.modelBytes / MB / (await sequentialRead(model, data.modelBytes)));
  const cpu1 = await cpuSecondsOfAll(await instance.pids());
  results.record(id, 'cpuPerGB', cpuDelta(cpu0, cpu1) / ((2 * data.modelBytes) / 1e9));
  if (cpu1.size > 1 && results.samples(id, 'cpuPerGB').length === 1) {
    const parts: string[] = [];
    for (const [pid, seconds] of cpu1) {
      parts.push(`${await commandOf(pid)} ${(seconds - (cpu0.get(pid) ?? 0)).toFixed(2)}`);
    }
    results.note(id, `CPU seconds by process over the cold + warm read of round 1: ${parts.join(', ')}`);
  }
  results.record(id, 'rereadKept', data.modelBytes / MB / (await sequentialRead(model, data.modelBytes)));
  if (byWindow) results.record(id, 'ampModel', (await windowBytes(ctx, system, modelMark)) / data.modelBytes);

  await dropCaches();
  const ttfbWarm = await reader(
    { kind: 'ttfb', paths: ttfbPaths(ctx, root) },
    timeoutFor(profile.ttfbFiles, 10_000),
  );
  results.record(id, 'ttfbWarm', median(ttfbWarm.seconds) * 1000);

  const list = await smallFileList(ctx);
  await dropCaches();
  const smallCold = await reader(
    { kind: 'files', root, listPath: list, concurrency: 16 },
    timeoutFor(profile.smallFileCount, 200),
  );
  results.record(id, 'smallCold', smallCold.items / smallCold.seconds[0]!);
  await dropCaches();
  const smallWarm = await reader(
    { kind: 'files', root, listPath: list, concurrency: 16 },
    timeoutFor(profile.smallFileCount, 200),
  );
  results.record(id, 'smallWarm', smallWarm.items / smallWarm.seconds[0]!);

  await measureMetadata(id, join(root, data.treeDir), ctx, { dropFirst: true });

  await dropCaches();
  const sqliteSpec = {
    kind: 'sqlite',
    path: join(root, data.sqlite),
    rows: data.sqliteRows,
    queries: profile.sqliteQueries,
    seed: 42,
  } as const;
  const sqliteCold = await reader(sqliteSpec, timeoutFor(profile.sqliteQueries, 200));
  results.record(id, 'sqliteCold', sqliteCold.items / sqliteCold.seconds[0]!);
  await dropCaches();
  const sqliteWarm = await reader(sqliteSpec, timeoutFor(profile.sqliteQueries, 200));
  results.record(id, 'sqliteWarm', sqliteWarm.items / sqliteWarm.seconds[0]!);

  for (const [count, path] of data.fanout) {
    await dropCaches();
    const mark = byWindow ? (await settledRecords(ctx.origin)).length : 0;
    const started = process.hrtime.bigint();
    await Promise.all(
      Array.from({ length: count }, () => sequentialRead(join(root, path), data.fanoutBytes * count)),
    );
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    results.record(id, `fanout${count}`, (count * data.fanoutBytes) / MB / seconds);
    if (byWindow)
      results.record(id, `amp${count}`, (await windowBytes(ctx, system, mark)) / data.fanoutBytes);
  }

  let rss = 0;
  const rssParts: string[] = [];
  for (const pid of await instance.pids()) {
    const bytes = (await peakRssBytesOf(pid)) ?? 0;
    rss += bytes;
    rssParts.push(`${await commandOf(pid)} ${(bytes / MB).toFixed(0)}`);
  }
  if (rss > 0) results.record(id, 'peakRss', rss / MB);
  if (rssParts.length > 1 && results.samples(id, 'peakRss').length === 1) {
    results.note(id, `peak MB by process in round 1: ${rssParts.join(', ')}`);
  }
}

/** Body bytes the origin sent to `system`'s origin kind since record number `mark`. */
async function windowBytes(ctx: WorkloadContext, system: System, mark: number): Promise<number> {
  return (await settledRecords(ctx.origin))
    .slice(mark)
    .filter((record) => record.origin === system.origin)
    .reduce((sum, record) => sum + record.bodyBytes, 0);
}

/** Origin bytes ÷ unique bytes of one round, from the records logged while it ran. */
export function recordAmplification(
  system: System,
  records: Awaited<ReturnType<Origin['records']>>,
  ctx: WorkloadContext,
): void {
  if (system.amplificationByWindow === true) return;
  const ours = records.filter((record) => record.origin === system.origin);
  ctx.results.record(system.id, 'ampModel', bytesFor(ours, ctx.data.model) / ctx.data.modelBytes);
  for (const [count, path] of ctx.data.fanout) {
    ctx.results.record(system.id, `amp${count}`, bytesFor(ours, path) / ctx.data.fanoutBytes);
  }
}

/** `ls -lR` cold (after dropping caches when asked), a stat walk and `ls -lR` again, warm. */
async function measureMetadata(
  id: string,
  tree: string,
  ctx: WorkloadContext,
  options: { dropFirst: boolean },
): Promise<void> {
  const entries = ctx.data.treeEntries;
  if (options.dropFirst) await dropCaches();
  const lsCold = await runOk('ls', ['-lR', tree], {
    timeoutMs: timeoutFor(entries, 20),
    discardStdout: true,
  });
  ctx.results.record(id, 'lsCold', entries / lsCold.seconds);
  const stat = await reader({ kind: 'stat', root: tree }, timeoutFor(entries, 20));
  if (stat.items !== entries) ctx.results.note(id, `the stat walk saw ${stat.items} of ${entries} entries`);
  ctx.results.record(id, 'statWarm', stat.items / stat.seconds[0]!);
  const lsWarm = await runOk('ls', ['-lR', tree], {
    timeoutMs: timeoutFor(entries, 20),
    discardStdout: true,
  });
  ctx.results.record(id, 'lsWarm', entries / lsWarm.seconds);
}

/** The local-disk references: cold disk (caches dropped) and the page cache (kept). */
export async function measureLocalRound(ctx: WorkloadContext): Promise<void> {
  const { data, profile, results } = ctx;
  const root = data.root;
  const id = 'local';
  await dropCaches();
  const ttfb = await reader(
    { kind: 'ttfb', paths: ttfbPaths(ctx, root) },
    timeoutFor(profile.ttfbFiles, 10_000),
  );
  results.record(id, 'ttfbCold', median(ttfb.seconds) * 1000);
  const ttfbKept = await reader(
    { kind: 'ttfb', paths: ttfbPaths(ctx, root) },
    timeoutFor(profile.ttfbFiles, 10_000),
  );
  results.record(id, 'ttfbKept', median(ttfbKept.seconds) * 1000);
  const model = join(root, data.model);
  await dropCaches();
  results.record(id, 'coldRead', data.modelBytes / MB / (await sequentialRead(model, data.modelBytes)));
  results.record(id, 'rereadKept', data.modelBytes / MB / (await sequentialRead(model, data.modelBytes)));
  results.record(id, 'directRead', data.modelBytes / MB / (await directRead(model, data.modelBytes)));
  const list = await smallFileList(ctx);
  await dropCaches();
  const cold = await reader(
    { kind: 'files', root, listPath: list, concurrency: 16 },
    timeoutFor(profile.smallFileCount, 200),
  );
  results.record(id, 'smallCold', cold.items / cold.seconds[0]!);
  const kept = await reader(
    { kind: 'files', root, listPath: list, concurrency: 16 },
    timeoutFor(profile.smallFileCount, 200),
  );
  results.record(id, 'smallKept', kept.items / kept.seconds[0]!);
  await measureMetadata(id, join(root, data.treeDir), ctx, { dropFirst: true });
  const sqliteSpec = {
    kind: 'sqlite',
    path: join(root, data.sqlite),
    rows: data.sqliteRows,
    queries: profile.sqliteQueries,
    seed: 42,
  } as const;
  await dropCaches();
  const sqliteCold = await reader(sqliteSpec, timeoutFor(profile.sqliteQueries, 200));
  results.record(id, 'sqliteCold', sqliteCold.items / sqliteCold.seconds[0]!);
  const sqliteKept = await reader(sqliteSpec, timeoutFor(profile.sqliteQueries, 200));
  results.record(id, 'sqliteKept', sqliteKept.items / sqliteKept.seconds[0]!);
}

/**
 * The origin references with curl: one stream, `parallelStreams` ranged streams, time to first byte
 * of a 1-byte range, and every small file over `--parallel` connections. Also the origin's own CPU
 * per GB (nginx), the yardstick for the daemons' CPU.
 */
export async function measureOriginRound(ctx: WorkloadContext): Promise<void> {
  const { data, profile, results, origin } = ctx;
  const url = (path: string): string =>
    `${origin.httpUrl}${path.split('/').map(encodeURIComponent).join('/')}`;
  const curl = (args: readonly string[], timeoutMs: number) =>
    runOk('curl', ['-sS', '--fail', ...args], { timeoutMs });

  const single = await curl(['-o', '/dev/null', url(data.model)], 120_000 + (data.modelBytes / 5e6) * 1000);
  results.record('curl-1', 'coldRead', data.modelBytes / MB / single.seconds);

  const streams = profile.parallelStreams;
  const part = Math.ceil(data.modelBytes / streams);
  const cpu0 = await cpuSecondsOfAll([origin.nginxPid]);
  const started = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: streams }, (_, index) =>
      curl(
        [
          '-o',
          '/dev/null',
          '-r',
          `${index * part}-${Math.min(data.modelBytes, (index + 1) * part) - 1}`,
          url(data.model),
        ],
        120_000 + (data.modelBytes / 5e6) * 1000,
      ),
    ),
  );
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  const cpu1 = await cpuSecondsOfAll([origin.nginxPid]);
  results.record('curl-P', 'coldRead', data.modelBytes / MB / seconds);
  results.record('curl-P', 'cpuPerGB', cpuDelta(cpu0, cpu1) / (data.modelBytes / 1e9));

  const ttfb: number[] = [];
  for (const path of data.smallFiles.slice(-profile.ttfbFiles)) {
    const result = await curl(
      ['-o', '/dev/null', '-r', '0-0', '-w', '%{time_starttransfer}', url(path)],
      30_000,
    );
    ttfb.push(Number(result.stdout.trim()) * 1000);
  }
  results.record('curl-1', 'ttfbCold', median(ttfb));

  const config = join(ctx.workDir, 'curl-small.cfg');
  await writeFile(
    config,
    data.smallFiles.map((path) => `url = "${url(path)}"\noutput = "/dev/null"\n`).join(''),
  );
  const small = await curl(
    ['--parallel', '--parallel-max', '16', '-K', config],
    timeoutFor(profile.smallFileCount, 200),
  );
  results.record('curl-P', 'smallCold', data.smallFiles.length / small.seconds);
}

/** Waits until nginx has logged every request: the log stops growing for a moment. */
export async function settledRecords(origin: Origin): Promise<Awaited<ReturnType<Origin['records']>>> {
  let previous = -1;
  for (let attempt = 0; attempt < 20; attempt += 1) {
    const records = await origin.records();
    if (records.length === previous) return records;
    previous = records.length;
    await run('sleep', ['0.25'], { timeoutMs: 5000 });
  }
  return origin.records();
}
