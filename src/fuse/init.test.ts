import { test } from 'node:test';
import assert from 'node:assert/strict';
import { negotiateInit } from './init.ts';
import { InitFlag, decodeInitIn, encodeInitOut } from './protocol.ts';

const SETTINGS = {
  maxWriteBytes: 32 * 1024,
  maxReadBytes: undefined,
  maxReadaheadBytes: 4 * 1024 * 1024,
  maxBackground: 64,
  congestionThreshold: 48,
};

/** A fuse_init_in as a kernel of protocol 7.`minor` sends it. */
function initIn(minor: number, flags: bigint, readaheadBytes = 128 * 1024): Buffer {
  const body = Buffer.alloc(64);
  body.writeUInt32LE(7, 0);
  body.writeUInt32LE(minor, 4);
  body.writeUInt32LE(readaheadBytes, 8);
  body.writeUInt32LE(Number(flags & 0xffff_ffffn), 12);
  body.writeUInt32LE(Number(flags >> 32n), 16);
  return body;
}

const EVERYTHING = (1n << 43n) - 1n;

test('a 7.45 kernel gets 7.45 with the wanted flags, resend among them', () => {
  const outcome = negotiateInit(decodeInitIn(initIn(45, EVERYTHING)), SETTINGS);
  assert.equal(outcome.kind, 'accept');
  assert.equal(outcome.reply.minor, 45);
  for (const flag of [
    InitFlag.ASYNC_READ,
    InitFlag.PARALLEL_DIROPS,
    InitFlag.DO_READDIRPLUS,
    InitFlag.READDIRPLUS_AUTO,
    InitFlag.AUTO_INVAL_DATA,
    InitFlag.MAX_PAGES,
    InitFlag.HAS_RESEND,
  ]) {
    assert.notEqual(outcome.reply.flags & flag, 0n, `flag ${flag}`);
  }
  for (const flag of [
    InitFlag.WRITEBACK_CACHE,
    InitFlag.POSIX_LOCKS,
    InitFlag.PASSTHROUGH,
    InitFlag.OVER_IO_URING,
    InitFlag.EXPLICIT_INVAL_DATA,
  ]) {
    assert.equal(outcome.reply.flags & flag, 0n, `flag ${flag}`);
  }
  assert.equal(outcome.reply.maxPages, 256, 'READs of 1 MiB');
  assert.equal(outcome.reply.maxReadaheadBytes, 128 * 1024, 'never more readahead than the kernel offers');
});

test('a 7.31 kernel (Linux 5.4) gets 7.31 and no flags2', () => {
  const offered = EVERYTHING & ((1n << 28n) - 1n); // 7.31 knew the flags up to SUBMOUNTS's predecessors
  const outcome = negotiateInit(decodeInitIn(initIn(31, offered)), SETTINGS);
  assert.equal(outcome.kind, 'accept');
  assert.equal(outcome.reply.minor, 31);
  assert.equal(outcome.reply.flags >> 32n, 0n);
  assert.equal(outcome.reply.flags & InitFlag.INIT_EXT, 0n);
  const encoded = encodeInitOut(outcome.reply);
  assert.equal(encoded.length, 64);
  assert.equal(encoded.readUInt32LE(4), 31);
  assert.equal(encoded.readUInt16LE(28), 256);
});

test('flags2 is read only when the kernel sets INIT_EXT', () => {
  const withoutExt = decodeInitIn(initIn(45, InitFlag.ASYNC_READ | InitFlag.HAS_RESEND));
  assert.equal(withoutExt.flags & InitFlag.HAS_RESEND, 0n);
  const withExt = decodeInitIn(initIn(45, InitFlag.ASYNC_READ | InitFlag.INIT_EXT | InitFlag.HAS_RESEND));
  assert.notEqual(withExt.flags & InitFlag.HAS_RESEND, 0n);
  const outcome = negotiateInit(withExt, SETTINGS);
  assert.ok(
    outcome.kind === 'accept' &&
      encodeInitOut(outcome.reply).readUInt32LE(32) === Number(InitFlag.HAS_RESEND >> 32n),
  );
});

test('kernels older than 7.31 are refused, newer majors are told ours', () => {
  assert.equal(negotiateInit(decodeInitIn(initIn(30, EVERYTHING)), SETTINGS).kind, 'refuse');
  const newer = initIn(0, 0n);
  newer.writeUInt32LE(8, 0);
  assert.deepEqual(negotiateInit(decodeInitIn(newer), SETTINGS), {
    kind: 'other-major',
    reply: { major: 7, minor: 45 },
  });
});

test('max_read limits max_pages', () => {
  const outcome = negotiateInit(decodeInitIn(initIn(45, EVERYTHING)), { ...SETTINGS, maxReadBytes: 131072 });
  assert.ok(outcome.kind === 'accept' && outcome.reply.maxPages === 32);
});
