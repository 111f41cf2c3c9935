import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { closeSync, constants, openSync } from 'node:fs';
import { mkdtemp, open, readFile, rm, statfs } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { PIECE_BYTES, checksumsOf, xxh64HexesOf } from './block-checksum.ts';
import {
  DIRECT_IO_MIN_BYTES,
  readBlockMeta,
  readCheckedBlock,
  trailerOf,
  writeBlockFile,
  type BlockFileMetaV2,
} from './block-file.ts';
import { DIRECT_IO_ALIGN_BYTES, allocateAligned, directIoProbeOf, isDirectIoAligned } from './buffer-pool.ts';

const MiB = 1024 * 1024;
const TMPFS_MAGIC = 0x01021994;

async function tempDir(t: TestContext, base = tmpdir()): Promise<string> {
  const dir = await mkdtemp(join(base, 'tide-block-file-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** True when files in `dir` open with O_DIRECT on a disk file system (not tmpfs). */
async function takesDirectIo(dir: string): Promise<boolean> {
  if ((await statfs(dir)).type === TMPFS_MAGIC) return false;
  try {
    closeSync(openSync(join(dir, 'probe'), constants.O_WRONLY | constants.O_CREAT | constants.O_DIRECT));
    return true;
  } catch {
    return false;
  }
}

/** Memory the kernel takes for direct I/O in `dir`, holding `data`. */
async function alignedCopy(dir: string, data: Buffer): Promise<Buffer> {
  const probePath = join(dir, 'probe');
  const handle = await open(probePath, 'w');
  await handle.write(Buffer.alloc(DIRECT_IO_ALIGN_BYTES));
  await handle.close();
  const fd = openSync(probePath, constants.O_RDONLY | constants.O_DIRECT);
  try {
    const buffer = allocateAligned(Math.max(data.length, DIRECT_IO_ALIGN_BYTES), directIoProbeOf(fd));
    assert.ok(buffer !== undefined && isDirectIoAligned(buffer));
    data.copy(buffer);
    return buffer.subarray(0, data.length);
  } finally {
    closeSync(fd);
  }
}

function metaOf(data: Uint8Array): BlockFileMetaV2 {
  const checksums = checksumsOf(data);
  return {
    format: 2,
    mount: 'local:///origin',
    path: 'f',
    version: 'v1',
    index: 0,
    blockSizeBytes: 4 * MiB,
    sizeBytes: data.length,
    pieceBytes: checksums.pieceBytes,
    pieceXxh64s: xxh64HexesOf(checksums.pieceXxh64s),
  };
}

/** Writes `data` as block file `name` in `dir` with direct I/O asked for; returns its path. */
async function writeDirect(dir: string, name: string, data: Uint8Array): Promise<string> {
  const finalPath = join(dir, name);
  await writeBlockFile({
    tmpPath: join(dir, 'w.tmp'),
    finalPath,
    data,
    trailer: trailerOf(metaOf(data)),
    direct: true,
  });
  return finalPath;
}

/** Bytes of `filePath` in the page cache (util-linux fincore), or undefined without the tool. */
function residentBytes(filePath: string): number | undefined {
  try {
    return Number(execFileSync('fincore', ['-b', '-n', '-o', 'RES', filePath], { encoding: 'utf8' }).trim());
  } catch {
    return undefined;
  }
}

// Whole blocks, the last (short) block of a file with a partial 4 KiB unit, a block just above the
// direct I/O threshold, and a tiny one (always buffered).
const SIZES = [4 * MiB, 4 * MiB - 1000, DIRECT_IO_MIN_BYTES + 123, 1000];

test('a block written with direct I/O reads back whole, with its trailer, from aligned or plain memory', async (t) => {
  const dir = await tempDir(t);
  for (const size of SIZES) {
    for (const aligned of [true, false]) {
      const label = `${size} bytes from ${aligned ? 'aligned' : 'plain'} memory`;
      const source = randomBytes(size);
      const data = aligned ? await alignedCopy(dir, source) : source;
      const meta = metaOf(data);
      const finalPath = await writeDirect(dir, `${size}-${aligned}.blk`, data);
      const onDisk = await readFile(finalPath);
      assert.ok(onDisk.subarray(0, size).equals(source), `${label}: the bytes on disk`);
      assert.deepEqual((await readBlockMeta(finalPath))?.meta, meta, `${label}: the trailer`);
      assert.deepEqual(xxh64HexesOf(checksumsOf(onDisk.subarray(0, size)).pieceXxh64s), meta.pieceXxh64s);
      for (const direct of [true, false]) {
        const into = aligned ? await alignedCopy(dir, Buffer.alloc(4 * MiB)) : Buffer.alloc(4 * MiB);
        const read = await readCheckedBlock(finalPath, meta, { into, direct });
        assert.ok(read?.equals(source) === true, `${label}: read back ${direct ? 'directly' : 'buffered'}`);
        assert.equal(read.buffer, into.buffer, `${label}: read into the caller's buffer`);
      }
    }
  }
});

test('direct writes leave the block out of the page cache but for its last 4 KiB unit and trailer', async (t) => {
  const dir = await tempDir(t);
  if (!(await takesDirectIo(dir))) {
    t.skip('no file system with O_DIRECT under the temporary directory');
    return;
  }
  const data = randomBytes(4 * MiB - 1000);
  const finalPath = await writeDirect(dir, 'b.blk', data);
  const resident = residentBytes(finalPath);
  if (resident === undefined) {
    t.skip('fincore is not installed');
    return;
  }
  assert.ok(
    resident <= 2 * DIRECT_IO_ALIGN_BYTES,
    `${resident} bytes of the block file are in the page cache`,
  );
  const read = await readCheckedBlock(finalPath, metaOf(data), { direct: true });
  assert.ok(read?.equals(data));
  assert.ok((residentBytes(finalPath) ?? 0) <= 2 * DIRECT_IO_ALIGN_BYTES, 'a direct read does not fill it');
});

test('a damaged piece fails a direct read as it fails a buffered one', async (t) => {
  const dir = await tempDir(t);
  const data = await alignedCopy(dir, randomBytes(MiB + 5000));
  const meta = metaOf(data);
  const finalPath = await writeDirect(dir, 'b.blk', data);
  const handle = await open(finalPath, 'r+');
  await handle.write(Buffer.from('garbage'), 0, 7, MiB + 10);
  await handle.close();
  const verified: number[] = [];
  const read = await readCheckedBlock(finalPath, meta, {
    direct: true,
    onVerified: (bytes) => verified.push(bytes),
  });
  assert.equal(read, undefined);
  assert.deepEqual(
    verified,
    Array.from({ length: MiB / PIECE_BYTES }, (_, n) => (n + 1) * PIECE_BYTES),
    'the pieces before the damage were handed on',
  );
  const short = metaOf(Buffer.concat([data, randomBytes(DIRECT_IO_ALIGN_BYTES)]));
  await assert.rejects(readCheckedBlock(finalPath, short, { direct: true }), { code: 'ERR_BLOCK_SHORT' });
});

test('falls back to the page cache on tmpfs, where direct I/O is refused or means nothing', async (t) => {
  const dir = await tempDir(t, '/dev/shm');
  const data = randomBytes(2 * MiB + 77);
  const meta = metaOf(data);
  const finalPath = await writeDirect(dir, 'b.blk', data);
  assert.deepEqual((await readBlockMeta(finalPath))?.meta, meta);
  assert.ok((await readCheckedBlock(finalPath, meta, { direct: true }))?.equals(data));
  assert.ok((await readCheckedBlock(finalPath, meta, { memory: true }))?.equals(data));
});
