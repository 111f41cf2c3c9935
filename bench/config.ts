import { homedir } from 'node:os';
import { join } from 'node:path';

/** Sizes of one benchmark run. `full` is the real run; `quick` a smoke run of the same code. */
export interface Profile {
  name: 'full' | 'quick';
  /** The model-like file, read sequentially. */
  modelBytes: number;
  smallFileCount: number;
  smallFileBytes: number;
  /** Entries (directories and files) of the metadata tree. */
  treeEntries: number;
  /** One file per reader count of the fan-out test, so that each starts cold. */
  fanoutBytes: number;
  /** Rows of the SQLite database (one 4 KiB page each). */
  sqliteRows: number;
  /** Random point queries per SQLite measurement. */
  sqliteQueries: number;
  /** Fresh instances (mounts with empty caches) per system; every figure is the median over them. */
  rounds: number;
  readerCounts: readonly number[];
  /** Per-connection `limit_rate` of the emulated remote store. */
  originRateBytesPerSecond: number;
  /** Streams of the parallel ranged reference read. */
  parallelStreams: number;
  /** Files whose time to first byte is measured each round. */
  ttfbFiles: number;
}

const MiB = 1024 * 1024;

export const PROFILES: Readonly<Record<Profile['name'], Profile>> = {
  full: {
    name: 'full',
    modelBytes: 1024 * MiB,
    smallFileCount: 10_000,
    smallFileBytes: 16 * 1024,
    treeEntries: 100_000,
    fanoutBytes: 128 * MiB,
    sqliteRows: 65_536,
    sqliteQueries: 2_000,
    rounds: 3,
    readerCounts: [1, 4, 16],
    originRateBytesPerSecond: 100 * MiB,
    parallelStreams: 8,
    ttfbFiles: 10,
  },
  quick: {
    name: 'quick',
    modelBytes: 64 * MiB,
    smallFileCount: 500,
    smallFileBytes: 16 * 1024,
    treeEntries: 2_000,
    fanoutBytes: 8 * MiB,
    sqliteRows: 4_096,
    sqliteQueries: 300,
    rounds: 3,
    readerCounts: [1, 4, 16],
    originRateBytesPerSecond: 100 * MiB,
    parallelStreams: 8,
    ttfbFiles: 5,
  },
};

/** Where the harness keeps generated data, the PyPI peers and its scratch space (outside the repo). */
export interface BenchPaths {
  home: string;
  /** Generated data sets, reused across runs. */
  dataRoot: string;
  /** Scratch: mount points, peer caches, Tide homes. Emptied at the start of a run. */
  runDir: string;
  venvBin: string;
  repo: string;
}

export function benchPaths(env: NodeJS.ProcessEnv): BenchPaths {
  const home = env['TIDE_BENCH_HOME'] ?? join(homedir(), '.cache', 'tide-bench');
  return Object.freeze({
    home,
    dataRoot: join(home, 'data'),
    runDir: join(home, 'run'),
    venvBin: join(home, 'venv', 'bin'),
    repo: join(import.meta.dirname, '..'),
  });
}

export const SEED = 'tide-bench-v1';
