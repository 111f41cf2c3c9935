import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, open, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { crc32 } from 'node:zlib';
import { PIECE_BYTES, checksumsOf, crc32Combine } from './block-checksum.ts';
import {
  readBlockMeta,
  readCheckedBlock,
  trailerOf,
  writeBlockFile,
  type BlockFileMeta,
} from './block-file.ts';

async function tempDir(t: TestContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'tide-checksum-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

async function blockFile(t: TestContext, data: Buffer, withPieces: boolean): Promise<string> {
  const dir = await tempDir(t);
  const checksums = checksumsOf(data);
  const meta: BlockFileMeta = {
    format: 1,
    mount: 'local:///origin',
    path: 'f',
    version: 'v1',
    index: 0,
    blockSizeBytes: 4 * 1024 * 1024,
    sizeBytes: data.length,
    crc32: checksums.crc32,
    ...(withPieces ? { pieceBytes: checksums.pieceBytes, pieceCrc32s: checksums.pieceCrc32s } : {}),
  };
  const finalPath = join(dir, 'block.blk');
  await writeBlockFile({ tmpPath: join(dir, 'block.tmp'), finalPath, data, trailer: trailerOf(meta) });
  return finalPath;
}

async function damage(filePath: string, at: number): Promise<void> {
  const handle = await open(filePath, 'r+');
  await handle.write(Buffer.from('garbage'), 0, 7, at);
  await handle.close();
}

test('the CRC-32 combined from the pieces is the CRC-32 of the whole block', () => {
  for (const size of [0, 1, 1000, PIECE_BYTES, PIECE_BYTES + 1, 4 * 1024 * 1024, 4 * 1024 * 1024 - 7]) {
    const data = randomBytes(size);
    const checksums = checksumsOf(data);
    assert.equal(checksums.crc32, crc32(data), `${size} bytes`);
    assert.equal(checksums.pieceCrc32s.length, Math.ceil(size / PIECE_BYTES));
  }
  const a = randomBytes(333);
  const b = randomBytes(4444);
  assert.equal(crc32Combine(crc32(a), crc32(b), b.length), crc32(Buffer.concat([a, b])));
});

test('hands on the checked pieces of a block file before a damaged one, and never the damaged one', async (t) => {
  const data = randomBytes(4 * PIECE_BYTES + 100);
  const filePath = await blockFile(t, data, true);
  const meta = (await readBlockMeta(filePath))?.meta;
  assert.ok(meta?.pieceCrc32s !== undefined, 'the trailer keeps the piece checksums');
  const verified: number[] = [];
  const whole = await readCheckedBlock(filePath, meta, { onVerified: (bytes) => verified.push(bytes) });
  assert.ok(whole?.equals(data));
  assert.deepEqual(verified, [1, 2, 3, 4].map((n) => n * PIECE_BYTES).concat(data.length));

  await damage(filePath, 2 * PIECE_BYTES + 10);
  verified.length = 0;
  const damaged = await readCheckedBlock(filePath, meta, { onVerified: (bytes) => verified.push(bytes) });
  assert.equal(damaged, undefined, 'a damaged piece fails the block');
  assert.deepEqual(verified, [PIECE_BYTES, 2 * PIECE_BYTES], 'only the pieces before it were handed on');
});

test('checks block files written without piece checksums against the whole block', async (t) => {
  const data = randomBytes(3 * PIECE_BYTES);
  const filePath = await blockFile(t, data, false);
  const meta = (await readBlockMeta(filePath))?.meta;
  assert.ok(meta !== undefined && meta.pieceCrc32s === undefined);
  assert.ok((await readCheckedBlock(filePath, meta))?.equals(data));
  await damage(filePath, PIECE_BYTES);
  assert.equal(await readCheckedBlock(filePath, meta), undefined);
});
