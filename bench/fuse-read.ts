/**
 * FUSE read benchmark (not a test): a 1 GiB file and a tree of many entries in a local directory,
 * served through a supervised mount (src/fuse/mount-main.ts).
 *
 *   node bench/fuse-read.ts [--size-mib 1024] [--entries 20000] [--json out.json]
 *
 * Measures: the first read through the mount with every page cache dropped (disk → daemon →
 * kernel), the first read with only the mount's cache cold (source in memory: the daemon's own
 * speed), the re-read from the kept page cache, and the rate of `stat` over many entries, cold and
 * warm. Needs root (mount, drop_caches). Targets: ≥ 1 GB/s through the daemon, ≥ 5 GB/s re-read,
 * ≥ 50,000 entries/s warm stat.
 */
import { createCipheriv, createHash } from 'node:crypto';
import { mkdir, open, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { makeTempDir, run, sh, startMount } from '../test/integration/fuse/harness.ts';

const { values } = parseArgs({
  options: {
    'size-mib': { type: 'string', default: '1024' },
    entries: { type: 'string', default: '20000' },
    json: { type: 'string' },
  },
});
const sizeBytes = Number(values['size-mib']) * 1024 * 1024;
const entryCount = Number(values.entries);

async function writeRandomFile(path: string, bytes: number): Promise<void> {
  const cipher = createCipheriv(
    'aes-256-ctr',
    createHash('sha256').update('bench').digest(),
    Buffer.alloc(16),
  );
  const zeros = Buffer.alloc(8 * 1024 * 1024);
  const handle = await open(path, 'w');
  for (let written = 0; written < bytes; written += zeros.length) {
    await handle.write(cipher.update(zeros.subarray(0, Math.min(zeros.length, bytes - written))));
  }
  await handle.close();
}

async function dropCaches(): Promise<void> {
  await sh('sync && echo 3 > /proc/sys/vm/drop_caches');
}

/** Reads `path` with dd and 1 MiB reads; returns bytes per second. */
async function readThrough(path: string): Promise<number> {
  const started = process.hrtime.bigint();
  const result = await sh(`dd if=${JSON.stringify(path)} of=/dev/null bs=1M status=none`, {
    timeoutMs: 600_000,
  });
  if (result.code !== 0) throw new Error(result.stderr);
  return (await stat(path)).size / (Number(process.hrtime.bigint() - started) / 1e9);
}

/** lstat(2) of every entry under `root` from Python (two passes: cold, then warm); entries per second. */
async function statRates(root: string): Promise<[number, number]> {
  const script = `
import os, sys, time
root = sys.argv[1]
paths = [os.path.join(d, n) for d, dirs, files in os.walk(root) for n in dirs + files]
rates = []
for _ in range(2):
    started = time.perf_counter()
    for p in paths:
        os.lstat(p)
    rates.append(len(paths) / (time.perf_counter() - started))
print(rates[0], rates[1])
`;
  const result = await run('python3', ['-c', script, root], { timeoutMs: 600_000 });
  const [cold, warm] = result.stdout.trim().split(' ').map(Number);
  return [cold ?? 0, warm ?? 0];
}

async function lsRate(root: string): Promise<number> {
  const started = process.hrtime.bigint();
  const result = await sh(`ls -lR ${JSON.stringify(root)} | wc -l`, { timeoutMs: 600_000 });
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  return Number(result.stdout.trim()) / seconds;
}

const origin = await makeTempDir('tide-fuse-bench-');
const results: Record<string, number> = {};
try {
  await writeRandomFile(join(origin, 'big.bin'), sizeBytes);
  const perDir = 200;
  for (let dir = 0; dir * perDir < entryCount; dir += 1) {
    await mkdir(join(origin, 'tree', `d${dir}`), { recursive: true });
    await Promise.all(
      Array.from({ length: Math.min(perDir, entryCount - dir * perDir) }, (_, file) =>
        writeFile(join(origin, 'tree', `d${dir}`, `f${file}`), 'x'),
      ),
    );
  }
  const mount = await startMount({
    sourceDir: origin,
    fuseArgs: ['-oattr_timeout=60,entry_timeout=60,negative_timeout=60'],
  });
  try {
    const big = join(mount.target, 'big.bin');
    await dropCaches();
    results.coldAllCachesMBps = (await readThrough(big)) / 1e6;
    results.rereadMBps = (await readThrough(big)) / 1e6;
    results.reread2MBps = (await readThrough(big)) / 1e6;
    await dropCaches();
    // Reading the source straight from disk also leaves it in memory for the next step.
    results.sourceDiskMBps = (await readThrough(join(origin, 'big.bin'))) / 1e6;
    // The ceiling of any re-read: the source file itself from the page cache.
    results.sourcePageCacheMBps = (await readThrough(join(origin, 'big.bin'))) / 1e6;
    results.coldMountSourceInMemoryMBps = (await readThrough(big)) / 1e6;
    await dropCaches();
    [results.statAfterReaddirPerSecond, results.statWarmPerSecond] = await statRates(
      join(mount.target, 'tree'),
    );
    results.lsLRWarmLinesPerSecond = await lsRate(join(mount.target, 'tree'));
  } finally {
    await mount.stop();
  }
  await lsRate(join(origin, 'tree'));
  results.lsLROriginLinesPerSecond = await lsRate(join(origin, 'tree'));
  const noXattr = await startMount({
    sourceDir: origin,
    fuseArgs: ['-oattr_timeout=60,entry_timeout=60,no_xattr'],
  });
  try {
    await lsRate(join(noXattr.target, 'tree'));
    results.lsLRNoXattrWarmLinesPerSecond = await lsRate(join(noXattr.target, 'tree'));
  } finally {
    await noXattr.stop();
  }
} finally {
  await rm(origin, { recursive: true, force: true });
}

const fmt = (value: number | undefined): string => (value ?? Number.NaN).toFixed(0);
const rows = [
  ['first read, every cache dropped (disk → daemon)', `${fmt(results.coldAllCachesMBps)} MB/s`],
  ['the source file itself from disk, cache dropped', `${fmt(results.sourceDiskMBps)} MB/s`],
  ['first read through the daemon, source in memory', `${fmt(results.coldMountSourceInMemoryMBps)} MB/s`],
  [
    're-read from the kept page cache',
    `${fmt(results.rereadMBps)} MB/s, then ${fmt(results.reread2MBps)} MB/s`,
  ],
  ['(ceiling) the source file from the page cache', `${fmt(results.sourcePageCacheMBps)} MB/s`],
  [
    `lstat of ${entryCount} entries after os.walk (attributes from READDIRPLUS)`,
    `${fmt(results.statAfterReaddirPerSecond)} /s`,
  ],
  [`lstat of ${entryCount} entries, warm`, `${fmt(results.statWarmPerSecond)} /s`],
  ['ls -lR, warm (two xattr round trips per entry)', `${fmt(results.lsLRWarmLinesPerSecond)} lines/s`],
  ['ls -lR, warm, -ono_xattr', `${fmt(results.lsLRNoXattrWarmLinesPerSecond)} lines/s`],
  ['(reference) ls -lR of the origin directory', `${fmt(results.lsLROriginLinesPerSecond)} lines/s`],
];
process.stdout.write(`| FUSE read (${values['size-mib']} MiB file) | result |\n| --- | --- |\n`);
for (const [name, value] of rows) process.stdout.write(`| ${name} | ${value} |\n`);
if (values.json !== undefined) await writeFile(values.json, JSON.stringify(results, null, 2));
