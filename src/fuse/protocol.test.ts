import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  ATTR_OUT_SIZE,
  ENTRY_OUT_SIZE,
  decodeInHeader,
  direntPlusSize,
  direntSize,
  encodeAttrOut,
  encodeEntryOut,
  encodeNotifyInvalEntry,
  encodeOutHeader,
  readName,
  writeDirent,
} from './protocol.ts';

const attr = {
  ino: 42n,
  sizeBytes: 1000,
  mtimeMs: 1_700_000_000_123.5,
  mode: 0o100444,
  nlink: 1,
  uid: 0,
  gid: 0,
  blockSizeBytes: 131072,
};

test('fuse_entry_out and fuse_attr_out have the kernel sizes and field offsets', () => {
  assert.equal(ENTRY_OUT_SIZE, 128);
  assert.equal(ATTR_OUT_SIZE, 104);
  const entry = encodeEntryOut({
    nodeid: 42n,
    generation: 1n,
    entryTimeoutSeconds: 1.5,
    attrTimeoutSeconds: 60,
    attr,
  });
  assert.equal(entry.length, 128);
  assert.equal(entry.readBigUInt64LE(0), 42n);
  assert.equal(entry.readBigUInt64LE(16), 1n); // entry_valid seconds
  assert.equal(entry.readUInt32LE(32), 500_000_000); // entry_valid_nsec
  assert.equal(entry.readBigUInt64LE(24), 60n);
  assert.equal(entry.readBigUInt64LE(40 + 8), 1000n); // attr.size
  assert.equal(entry.readBigUInt64LE(40 + 16), 2n); // attr.blocks of 512 bytes
  assert.equal(entry.readBigUInt64LE(40 + 32), 1_700_000_000n); // attr.mtime
  assert.equal(entry.readUInt32LE(40 + 52), 123_500_000); // attr.mtimensec
  assert.equal(entry.readUInt32LE(40 + 60), 0o100444); // attr.mode
  const attrOut = encodeAttrOut(attr, 2);
  assert.equal(attrOut.readBigUInt64LE(0), 2n);
  assert.equal(attrOut.readUInt32LE(16 + 80), 131072); // attr.blksize
});

test('headers round-trip, with the resend bit of unique kept', () => {
  const raw = Buffer.alloc(40);
  raw.writeUInt32LE(48, 0);
  raw.writeUInt32LE(1, 4);
  raw.writeBigUInt64LE((1n << 63n) | 7n, 8);
  raw.writeBigUInt64LE(1n, 16);
  const header = decodeInHeader(raw);
  assert.equal(header.unique, (1n << 63n) | 7n);
  const out = encodeOutHeader({ length: 16, error: -2, unique: header.unique });
  assert.equal(out.readInt32LE(4), -2);
  assert.equal(out.readBigUInt64LE(8), header.unique);
});

test('dirents are padded to 8 bytes and carry the next offset', () => {
  assert.equal(direntSize(1), 32);
  assert.equal(direntSize(8), 32);
  assert.equal(direntSize(9), 40);
  assert.equal(direntPlusSize(1), 128 + 32);
  const target = Buffer.alloc(64, 0xff);
  const size = writeDirent(target, 0, { ino: 5n, nextOffset: 3, type: 8, name: Buffer.from('abc') });
  assert.equal(size, 32);
  assert.equal(target.readBigUInt64LE(8), 3n);
  assert.equal(target.readUInt32LE(16), 3);
  assert.equal(target.toString('utf8', 24, 27), 'abc');
  assert.ok(
    target.subarray(27, 32).every((byte) => byte === 0),
    'padding is zeroed',
  );
});

test('names are read up to their NUL and notifications carry one', () => {
  assert.equal(readName(Buffer.from('name.txt\0garbage')), 'name.txt');
  const inval = encodeNotifyInvalEntry(9n, Buffer.from('x.bin'));
  assert.equal(inval.readUInt32LE(8), 5);
  assert.equal(inval.length, 16 + 5 + 1);
  assert.equal(inval.at(-1), 0);
});
