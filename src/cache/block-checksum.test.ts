import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, open, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { crc32 } from 'node:zlib';
import { PIECE_BYTES, areXxh64Hexes, checksumsOf, parseXxh64Hexes, xxh64HexesOf } from './block-checksum.ts';
import {
  readBlockMeta,
  readCheckedBlock,
  readCheckedRange,
  trailerOf,
  writeBlockFile,
  type BlockFileMeta,
} from './block-file.ts';

async function tempDir(t: TestContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'tide-checksum-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

const KEY = { mount: 'local:///origin', path: 'f', version: 'v1', index: 0, blockSizeBytes: 4 * 1024 * 1024 };

/** A block file as this version writes it (format 2, XXH64 per piece). */
async function blockFile(t: TestContext, data: Buffer): Promise<string> {
  const dir = await tempDir(t);
  const checksums = checksumsOf(data);
  const meta: BlockFileMeta = {
    format: 2,
    ...KEY,
    sizeBytes: data.length,
    pieceBytes: checksums.pieceBytes,
    pieceXxh64s: xxh64HexesOf(checksums.pieceXxh64s),
  };
  const finalPath = join(dir, 'block.blk');
  await writeBlockFile({ tmpPath: join(dir, 'block.tmp'), finalPath, data, trailer: trailerOf(meta) });
  return finalPath;
}

/**
 * A block file of format 1 written byte by byte as earlier versions did (not through trailerOf):
 * the whole block's CRC-32 and, with `withPieces`, one per piece.
 */
async function formatOneFile(t: TestContext, data: Buffer, withPieces: boolean): Promise<string> {
  const pieceCrc32s: number[] = [];
  for (let start = 0; start < data.length; start += PIECE_BYTES)
    pieceCrc32s.push(crc32(data.subarray(start, start + PIECE_BYTES)));
  const json = Buffer.from(
    JSON.stringify({
      format: 1,
      ...KEY,
      sizeBytes: data.length,
      crc32: crc32(data),
      ...(withPieces ? { pieceBytes: PIECE_BYTES, pieceCrc32s } : {}),
    }),
  );
  const footer = Buffer.alloc(8);
  footer.writeUInt32LE(json.length, 0);
  footer.write('TDB1', 4, 'latin1');
  const filePath = join(await tempDir(t), 'old.blk');
  await writeFile(filePath, Buffer.concat([data, json, footer]));
  return filePath;
}

async function damage(filePath: string, at: number): Promise<void> {
  const handle = await open(filePath, 'r+');
  await handle.write(Buffer.from('garbage'), 0, 7, at);
  await handle.close();
}

test('each piece has its XXH64 (seed 0), and hex round-trips it', () => {
  // Reference values of XXH64 with seed 0 (xxHash's own test vectors).
  assert.deepEqual(xxh64HexesOf(checksumsOf(Buffer.from('abc')).pieceXxh64s), ['44bc2cf5ad770999']);
  assert.deepEqual(xxh64HexesOf(checksumsOf(Buffer.from('a')).pieceXxh64s), ['d24ec4f1a98c6e5b']);
  for (const size of [0, 1, 1000, PIECE_BYTES, PIECE_BYTES + 1, 4 * 1024 * 1024, 4 * 1024 * 1024 - 7]) {
    const data = randomBytes(size);
    const { pieceBytes, pieceXxh64s } = checksumsOf(data);
    assert.equal(pieceBytes, PIECE_BYTES);
    assert.equal(pieceXxh64s.length, Math.ceil(size / PIECE_BYTES), `${size} bytes`);
    for (const [index, value] of pieceXxh64s.entries()) {
      const piece = data.subarray(index * PIECE_BYTES, (index + 1) * PIECE_BYTES);
      assert.equal(value, checksumsOf(piece).pieceXxh64s[0], `piece ${index} of ${size} bytes`);
    }
    const hexes = xxh64HexesOf(pieceXxh64s);
    assert.ok(hexes.every((hex) => /^[0-9a-f]{16}$/.test(hex)));
    assert.ok(areXxh64Hexes(hexes));
    assert.deepEqual(parseXxh64Hexes(hexes), pieceXxh64s);
  }
  assert.equal(areXxh64Hexes(['44BC2CF5AD770999']), false, 'upper case is not what is written');
  assert.equal(areXxh64Hexes(['44bc2cf5ad77099']), false, '15 digits');
  assert.equal(areXxh64Hexes([12]), false, 'a number');
});

test('hands on the checked pieces of a block file before a damaged one, and never the damaged one', async (t) => {
  const data = randomBytes(4 * PIECE_BYTES + 100);
  const filePath = await blockFile(t, data);
  const meta = (await readBlockMeta(filePath))?.meta;
  assert.ok(meta?.format === 2, 'the trailer is of format 2');
  const parsed = { ...meta, pieceXxh64s: checksumsOf(data).pieceXxh64s };
  for (const check of [meta, parsed]) {
    const verified: number[] = [];
    const whole = await readCheckedBlock(filePath, check, { onVerified: (bytes) => verified.push(bytes) });
    assert.ok(whole?.equals(data));
    assert.deepEqual(verified, [1, 2, 3, 4].map((n) => n * PIECE_BYTES).concat(data.length));
  }

  await damage(filePath, 2 * PIECE_BYTES + 10);
  for (const check of [meta, parsed]) {
    const verified: number[] = [];
    const damaged = await readCheckedBlock(filePath, check, { onVerified: (bytes) => verified.push(bytes) });
    assert.equal(damaged, undefined, 'a damaged piece fails the block');
    assert.deepEqual(verified, [PIECE_BYTES, 2 * PIECE_BYTES], 'only the pieces before it were handed on');
  }
});

test('a range is checked by the pieces that hold it only', async (t) => {
  const data = randomBytes(3 * PIECE_BYTES + 500);
  const filePath = await blockFile(t, data);
  const meta = (await readBlockMeta(filePath))?.meta;
  assert.ok(meta !== undefined);
  const from = PIECE_BYTES + 100;
  const to = 3 * PIECE_BYTES + 200;
  assert.ok((await readCheckedRange(filePath, meta, from, to))?.equals(data.subarray(from, to)));
  await damage(filePath, 10);
  assert.ok(
    (await readCheckedRange(filePath, meta, from, to))?.equals(data.subarray(from, to)),
    'damage in another piece does not fail the range',
  );
  assert.equal(await readCheckedRange(filePath, meta, 5, 20), undefined, 'a damaged piece fails it');
});

test('block files of format 1 with CRC-32 per piece are still read, checked piece by piece', async (t) => {
  const data = randomBytes(4 * PIECE_BYTES + 100);
  const filePath = await formatOneFile(t, data, true);
  const meta = (await readBlockMeta(filePath))?.meta;
  assert.ok(meta?.format === 1 && meta.pieceCrc32s?.length === 5, 'the old trailer is understood');
  const verified: number[] = [];
  const whole = await readCheckedBlock(filePath, meta, { onVerified: (bytes) => verified.push(bytes) });
  assert.ok(whole?.equals(data));
  assert.deepEqual(verified, [1, 2, 3, 4].map((n) => n * PIECE_BYTES).concat(data.length));
  assert.ok((await readCheckedRange(filePath, meta, 10, 20))?.equals(data.subarray(10, 20)));

  await damage(filePath, 2 * PIECE_BYTES + 10);
  verified.length = 0;
  const damaged = await readCheckedBlock(filePath, meta, { onVerified: (bytes) => verified.push(bytes) });
  assert.equal(damaged, undefined);
  assert.deepEqual(verified, [PIECE_BYTES, 2 * PIECE_BYTES]);
  assert.equal(await readCheckedRange(filePath, meta, 2 * PIECE_BYTES, 2 * PIECE_BYTES + 20), undefined);
});

test('block files of format 1 without piece checksums are checked against the whole block', async (t) => {
  const data = randomBytes(3 * PIECE_BYTES);
  const filePath = await formatOneFile(t, data, false);
  const meta = (await readBlockMeta(filePath))?.meta;
  assert.ok(meta?.format === 1 && meta.pieceCrc32s === undefined);
  assert.ok((await readCheckedBlock(filePath, meta))?.equals(data));
  assert.equal(await readCheckedRange(filePath, meta, 0, 10), undefined, 'no range reads without pieces');
  await damage(filePath, PIECE_BYTES);
  assert.equal(await readCheckedBlock(filePath, meta), undefined);
});

test('a trailer of an unknown format, or with malformed checksums, is no block file', async (t) => {
  const data = randomBytes(1000);
  const dir = await tempDir(t);
  const { pieceXxh64s } = checksumsOf(data);
  const good = { format: 2, ...KEY, sizeBytes: data.length, pieceBytes: PIECE_BYTES };
  const cases = {
    'format 3': { ...good, format: 3, pieceXxh64s: xxh64HexesOf(pieceXxh64s) },
    'a number for a hex checksum': { ...good, pieceXxh64s: [Number(pieceXxh64s[0])] },
    'a checksum too many': { ...good, pieceXxh64s: xxh64HexesOf(pieceXxh64s).concat('0'.repeat(16)) },
    'no piece size': { ...good, pieceBytes: undefined, pieceXxh64s: xxh64HexesOf(pieceXxh64s) },
  };
  for (const [name, meta] of Object.entries(cases)) {
    const finalPath = join(dir, `${name}.blk`);
    const trailer = trailerOf(meta as unknown as BlockFileMeta);
    await writeBlockFile({ tmpPath: join(dir, 'tmp'), finalPath, data, trailer });
    assert.equal(await readBlockMeta(finalPath), undefined, name);
  }
});
