/**
 * The client side of a measurement, run as a child process of the harness (bench/workload.ts) so that
 * a stuck mount can be killed and its timing excludes the harness:
 *
 *   node bench/reader.ts '<json spec>'   →   one JSON line on standard output
 */
import { closeSync, lstatSync, openSync, readdirSync, readSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { pathToFileURL } from 'node:url';

export type ReaderSpec =
  | { kind: 'ttfb'; paths: string[] }
  | { kind: 'files'; root: string; listPath: string; concurrency: number }
  | { kind: 'stat'; root: string }
  | { kind: 'sqlite'; path: string; rows: number; queries: number; seed: number };

export interface ReaderResult {
  /** Seconds per item for `ttfb`, else one total. */
  seconds: number[];
  items: number;
  bytes: number;
}

function now(): number {
  return Number(process.hrtime.bigint()) / 1e9;
}

/** open + 1-byte read, synchronous: the time an application waits for its first byte. */
function ttfb(paths: readonly string[]): ReaderResult {
  const buffer = Buffer.alloc(1);
  const seconds: number[] = [];
  for (const path of paths) {
    const started = now();
    const fd = openSync(path, 'r');
    const read = readSync(fd, buffer, 0, 1, 0);
    seconds.push(now() - started);
    closeSync(fd);
    if (read !== 1) throw new Error(`Cannot read the first byte of ${path}: got ${read} bytes`);
  }
  return { seconds, items: paths.length, bytes: paths.length };
}

async function pool<T>(
  items: readonly T[],
  concurrency: number,
  work: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(concurrency, items.length) }, async () => {
      while (next < items.length) {
        const item = items[next]!;
        next += 1;
        await work(item);
      }
    }),
  );
}

async function files(root: string, listPath: string, concurrency: number): Promise<ReaderResult> {
  const paths = (await readFile(listPath, 'utf8')).split('\n').filter((line) => line !== '');
  let bytes = 0;
  const started = now();
  await pool(paths, concurrency, async (path) => {
    bytes += (await readFile(join(root, path))).length;
  });
  return { seconds: [now() - started], items: paths.length, bytes };
}

/**
 * readdir of every directory and lstat of every entry, one call at a time as `find -ls`, `du` and
 * Python's os.walk do. Synchronous on purpose: a pool of promises measured Node's own overhead
 * (36k entries/s on the local disk, where `find` does 400k).
 */
function statTree(root: string): ReaderResult {
  const started = now();
  let entries = 0;
  let dirs = [root];
  while (dirs.length > 0) {
    const next: string[] = [];
    for (const dir of dirs) {
      for (const name of readdirSync(dir)) {
        const path = join(dir, name);
        entries += 1;
        if (lstatSync(path).isDirectory()) next.push(path);
      }
    }
    dirs = next;
  }
  return { seconds: [now() - started], items: entries, bytes: 0 };
}

/** Point queries by random id (a seeded generator, so every system reads the same pages). */
function sqlite(path: string, rows: number, queries: number, seed: number): ReaderResult {
  const url = pathToFileURL(path);
  // immutable=1: no locks and no journal look-ups, as for a read-only data set on any mount.
  url.searchParams.set('immutable', '1');
  const db = new DatabaseSync(url, { readOnly: true });
  try {
    const select = db.prepare('SELECT length(payload) AS n FROM t WHERE id = ?');
    let state = seed >>> 0;
    let bytes = 0;
    const started = now();
    for (let index = 0; index < queries; index += 1) {
      // mulberry32
      state = (state + 0x6d2b79f5) >>> 0;
      let t = state;
      t = Math.imul(t ^ (t >>> 15), t | 1);
      t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
      const id = ((t ^ (t >>> 14)) >>> 0) % rows;
      const row = select.get(id) as { n: number } | undefined;
      if (row === undefined) throw new Error(`Cannot find row ${id} in ${path}`);
      bytes += row.n;
    }
    return { seconds: [now() - started], items: queries, bytes };
  } finally {
    db.close();
  }
}

async function main(): Promise<void> {
  const spec = JSON.parse(process.argv[2] ?? '{}') as ReaderSpec;
  let result: ReaderResult;
  switch (spec.kind) {
    case 'ttfb':
      result = ttfb(spec.paths);
      break;
    case 'files':
      result = await files(spec.root, spec.listPath, spec.concurrency);
      break;
    case 'stat':
      result = statTree(spec.root);
      break;
    case 'sqlite':
      result = sqlite(spec.path, spec.rows, spec.queries, spec.seed);
      break;
  }
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

await main();
