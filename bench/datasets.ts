import { createCipheriv, createHash } from 'node:crypto';
import { mkdir, open, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { SEED, type Profile } from './config.ts';

/** The generated data of one profile, served by every origin. Paths are relative to `root`. */
export interface DataSet {
  root: string;
  model: string;
  modelBytes: number;
  smallFiles: readonly string[];
  smallFileBytes: number;
  treeDir: string;
  treeEntries: number;
  fanout: ReadonlyMap<number, string>;
  fanoutBytes: number;
  sqlite: string;
  sqliteRows: number;
  /** Bytes of every file, for the origin's unique bytes. */
  sizes: Map<string, number>;
}

const SMALL_PER_DIR = 100;
const TREE_FILES_PER_DIR = 99;
const SQLITE_PAYLOAD_BYTES = 3500;

/** Deterministic bytes: the AES-256-CTR key stream of a key derived from the seed and a name. */
function keyStream(name: string): (bytes: number) => Buffer {
  const cipher = createCipheriv(
    'aes-256-ctr',
    createHash('sha256').update(`${SEED}/${name}`).digest(),
    Buffer.alloc(16),
  );
  return (bytes) => cipher.update(Buffer.alloc(bytes));
}

async function writeStream(path: string, name: string, bytes: number): Promise<void> {
  const next = keyStream(name);
  const chunkBytes = 8 * 1024 * 1024;
  const handle = await open(path, 'w');
  try {
    for (let written = 0; written < bytes; written += chunkBytes) {
      await handle.write(next(Math.min(chunkBytes, bytes - written)));
    }
  } finally {
    await handle.close();
  }
}

function layout(profile: Profile, root: string): DataSet {
  const smallFiles: string[] = [];
  for (let index = 0; index < profile.smallFileCount; index += 1) {
    const dir = String(Math.floor(index / SMALL_PER_DIR)).padStart(3, '0');
    smallFiles.push(`small/d${dir}/f${String(index).padStart(5, '0')}.bin`);
  }
  const fanout = new Map(profile.readerCounts.map((count) => [count, `fanout/n${count}.bin`] as const));
  const sizes = new Map<string, number>([['model.bin', profile.modelBytes]]);
  for (const path of smallFiles) sizes.set(path, profile.smallFileBytes);
  for (const path of fanout.values()) sizes.set(path, profile.fanoutBytes);
  return {
    root,
    model: 'model.bin',
    modelBytes: profile.modelBytes,
    smallFiles,
    smallFileBytes: profile.smallFileBytes,
    treeDir: 'tree',
    treeEntries: profile.treeEntries,
    fanout,
    fanoutBytes: profile.fanoutBytes,
    sqlite: 'db.sqlite',
    sqliteRows: profile.sqliteRows,
    sizes,
  };
}

/**
 * Generates the data set of `profile` under `dataRoot` once (a stamp file records what was made) and
 * returns its layout. The content depends only on the seed and the profile, so every run and every
 * machine reads the same bytes.
 */
export async function ensureDataSet(
  profile: Profile,
  dataRoot: string,
  log: (line: string) => void,
): Promise<DataSet> {
  const description = JSON.stringify({
    seed: SEED,
    modelBytes: profile.modelBytes,
    smallFileCount: profile.smallFileCount,
    smallFileBytes: profile.smallFileBytes,
    treeEntries: profile.treeEntries,
    fanoutBytes: profile.fanoutBytes,
    readerCounts: profile.readerCounts,
    sqliteRows: profile.sqliteRows,
  });
  const root = join(
    dataRoot,
    `${profile.name}-${createHash('sha256').update(description).digest('hex').slice(0, 8)}`,
  );
  const stamp = join(root, '.complete');
  const data = layout(profile, root);
  if ((await readFile(stamp, 'utf8').catch(() => '')) !== description) {
    await generate(profile, data, log);
    await writeFile(stamp, description);
  }
  data.sizes.set(data.sqlite, (await stat(join(root, data.sqlite))).size);
  return data;
}

async function generate(profile: Profile, data: DataSet, log: (line: string) => void): Promise<void> {
  const root = data.root;

  log(`generating the ${profile.name} data set in ${root}`);
  await rm(root, { recursive: true, force: true });
  await mkdir(root, { recursive: true });
  await writeStream(join(root, data.model), 'model', profile.modelBytes);

  for (let index = 0; index < data.smallFiles.length; index += SMALL_PER_DIR) {
    const batch = data.smallFiles.slice(index, index + SMALL_PER_DIR);
    await mkdir(join(root, batch[0]!, '..'), { recursive: true });
    await Promise.all(
      batch.map((path) => writeFile(join(root, path), keyStream(path)(profile.smallFileBytes))),
    );
  }

  // The tree: directories of 99 one-byte files, so that directories + files = treeEntries.
  const dirCount = Math.ceil(profile.treeEntries / (TREE_FILES_PER_DIR + 1));
  let remaining = profile.treeEntries;
  for (let dir = 0; dir < dirCount && remaining > 0; dir += 1) {
    const dirPath = join(root, data.treeDir, `d${String(dir).padStart(4, '0')}`);
    await mkdir(dirPath, { recursive: true });
    remaining -= 1;
    const files = Math.min(TREE_FILES_PER_DIR, remaining);
    await Promise.all(
      Array.from({ length: files }, (_, file) =>
        writeFile(join(dirPath, `e${String(file).padStart(2, '0')}`), 'x'),
      ),
    );
    remaining -= files;
  }

  await mkdir(join(root, 'fanout'), { recursive: true });
  for (const path of data.fanout.values()) await writeStream(join(root, path), path, profile.fanoutBytes);

  // SQLite: one row per 4 KiB page, so a point query by a random id reads random pages of the file.
  const db = new DatabaseSync(join(root, data.sqlite));
  try {
    db.exec('PRAGMA page_size = 4096; PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF;');
    db.exec('CREATE TABLE t (id INTEGER PRIMARY KEY, payload BLOB NOT NULL)');
    const insert = db.prepare('INSERT INTO t (id, payload) VALUES (?, ?)');
    const next = keyStream('sqlite');
    db.exec('BEGIN');
    for (let id = 0; id < profile.sqliteRows; id += 1) insert.run(id, next(SQLITE_PAYLOAD_BYTES));
    db.exec('COMMIT');
  } finally {
    db.close();
  }
}
