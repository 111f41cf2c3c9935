import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, constants, openSync, readSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm, statfs } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  BufferPool,
  DIRECT_IO_ALIGN_BYTES,
  allocateAligned,
  directIoProbeOf,
  isDirectIoAligned,
} from './buffer-pool.ts';

const TMPFS_MAGIC = 0x01021994;

/**
 * A descriptor opened with O_DIRECT on a 4 KiB file in a temporary directory of a disk file
 * system, or undefined (the test is skipped) where there is none.
 */
async function directFd(t: TestContext): Promise<number | undefined> {
  const dir = await mkdtemp(join(tmpdir(), 'tide-buffer-pool-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  if ((await statfs(dir)).type === TMPFS_MAGIC) return undefined;
  const filePath = join(dir, 'probe');
  writeFileSync(filePath, Buffer.alloc(2 * DIRECT_IO_ALIGN_BYTES, 7));
  try {
    const fd = openSync(filePath, constants.O_RDONLY | constants.O_DIRECT);
    t.after(() => {
      closeSync(fd);
    });
    return fd;
  } catch {
    return undefined;
  }
}

test('finds where in a buffer the kernel takes direct reads, and only 4 KiB steps from there', async (t) => {
  const fd = await directFd(t);
  if (fd === undefined) {
    t.skip('no file system with O_DIRECT under the temporary directory');
    return;
  }
  const buffer = allocateAligned(1024 * 1024, directIoProbeOf(fd));
  assert.ok(buffer !== undefined, 'an aligned start was found');
  assert.equal(buffer.length, 1024 * 1024);
  assert.ok(isDirectIoAligned(buffer));
  assert.ok(isDirectIoAligned(buffer.subarray(DIRECT_IO_ALIGN_BYTES)));
  assert.ok(!isDirectIoAligned(buffer.subarray(16)));
  assert.ok(!isDirectIoAligned(Buffer.allocUnsafeSlow(8192)), 'a buffer never probed is not known aligned');
  // The kernel agrees: a direct read into the view works, one 16 bytes further is refused.
  buffer.fill(0);
  assert.equal(readSync(fd, buffer, 0, 2 * DIRECT_IO_ALIGN_BYTES, 0), 2 * DIRECT_IO_ALIGN_BYTES);
  assert.ok(buffer.subarray(0, 2 * DIRECT_IO_ALIGN_BYTES).every((byte) => byte === 7));
  assert.throws(() => readSync(fd, buffer, 16, DIRECT_IO_ALIGN_BYTES, 0), { code: 'EINVAL' });
});

test('gives no aligned buffer when the probe refuses every start or fails otherwise', () => {
  let probes = 0;
  const refused = allocateAligned(64 * 1024, () => {
    probes += 1;
    return false;
  });
  assert.equal(refused, undefined);
  assert.equal(probes, DIRECT_IO_ALIGN_BYTES / 16, 'every 16-byte step was tried once');
  const failing = allocateAligned(64 * 1024, () => {
    throw Object.assign(new Error('I/O error'), { code: 'EIO' });
  });
  assert.equal(failing, undefined);
  assert.equal(
    allocateAligned(1024, () => true),
    undefined,
    'buffers under 4 KiB are never aligned',
  );
});

test('a pool with a direct I/O probe hands out aligned buffers, probing each buffer once', async (t) => {
  const fd = await directFd(t);
  if (fd === undefined) {
    t.skip('no file system with O_DIRECT under the temporary directory');
    return;
  }
  const probe = directIoProbeOf(fd);
  let probes = 0;
  const pool = new BufferPool(256 * 1024, 2, {
    directIo: (view) => {
      probes += 1;
      return probe(view);
    },
  });
  const first = pool.acquire();
  assert.ok(isDirectIoAligned(first));
  assert.equal(first.length, 256 * 1024);
  const probesForOne = probes;
  pool.release(first.subarray(4096, 8192));
  const again = pool.acquire();
  assert.equal(again, first, 'a view released gives back the whole pooled buffer');
  assert.equal(probes, probesForOne, 'a reused buffer is not probed again');
});

test('a pool without a probe, or whose probe refuses, hands out plain buffers', () => {
  const plain = new BufferPool(64 * 1024, 1).acquire();
  assert.equal(plain.length, 64 * 1024);
  assert.ok(!isDirectIoAligned(plain));
  const refused = new BufferPool(64 * 1024, 1, { directIo: () => false }).acquire();
  assert.equal(refused.length, 64 * 1024);
  assert.ok(!isDirectIoAligned(refused));
});

test('a pool told to use direct I/O later aligns the buffers it makes from then on', async (t) => {
  const fd = await directFd(t);
  if (fd === undefined) {
    t.skip('no file system with O_DIRECT under the temporary directory');
    return;
  }
  const pool = new BufferPool(64 * 1024, 2);
  const before = pool.acquire();
  pool.useDirectIo(directIoProbeOf(fd));
  const after = pool.acquire();
  assert.ok(!isDirectIoAligned(before));
  assert.ok(isDirectIoAligned(after));
});
