import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, mkdir, rm, writeFile, rename, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { SecretValue } from '../lib/index.ts';
import { createUnderFileSystem, UfsError, type UnderFileSystem, type UfsEntry } from './index.ts';

async function collect<T>(iterable: AsyncIterable<T>): Promise<T[]> {
  const items: T[] = [];
  for await (const item of iterable) items.push(item);
  return items;
}

async function readAll(ufs: UnderFileSystem, path: string, offset: number, length: number, version?: string) {
  const chunks = await collect(
    await ufs.read(path, { offset, length }, version === undefined ? {} : { version }),
  );
  return Buffer.concat(chunks);
}

async function tree(t: { after: (fn: () => Promise<void>) => void }): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'tide-ufs-local-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  await mkdir(join(dir, 'a', 'b'), { recursive: true });
  await writeFile(join(dir, 'top.txt'), 'hello world');
  await writeFile(join(dir, 'a', 'one.bin'), Buffer.alloc(3 * 1024 * 1024, 7));
  await writeFile(join(dir, 'a', 'b', 'deep file ü+%.txt'), 'deep');
  await writeFile(join(dir, 'empty'), '');
  await symlink(join(dir, 'missing-target'), join(dir, 'dangling'));
  return dir;
}

const none = { options: {}, secrets: {} };

test('a local mount lists direct children and skips dangling symbolic links', async (t) => {
  const dir = await tree(t);
  const ufs = createUnderFileSystem({ mountPoint: `local://${dir}`, ...none });
  const entries = await collect(ufs.list(''));
  const byPath = new Map(entries.map((entry) => [entry.path, entry]));
  assert.deepEqual([...byPath.keys()].sort(), ['a', 'empty', 'top.txt']);
  assert.equal(byPath.get('a')?.type, 'directory');
  assert.equal(byPath.get('top.txt')?.sizeBytes, 11);
  assert.equal(byPath.get('empty')?.sizeBytes, 0);
  await ufs.check();
});

test('a recursive local listing walks the whole subtree with paths relative to the root', async (t) => {
  const dir = await tree(t);
  const ufs = createUnderFileSystem({ mountPoint: `local://${dir}/`, ...none });
  const paths = (await collect(ufs.list('/a', { recursive: true }))).map((entry: UfsEntry) => entry.path);
  assert.deepEqual(paths.sort(), ['a/b', 'a/b/deep file ü+%.txt', 'a/one.bin']);
});

test('local reads return exactly the requested range and stop at end of file', async (t) => {
  const dir = await tree(t);
  const ufs = createUnderFileSystem({ mountPoint: `local://${dir}`, ...none });
  assert.equal((await readAll(ufs, 'top.txt', 6, 5)).toString(), 'world');
  assert.equal((await readAll(ufs, 'top.txt', 6, 100)).toString(), 'world');
  assert.equal((await readAll(ufs, 'top.txt', 50, 10)).length, 0);
  const big = await readAll(ufs, 'a/one.bin', 1024 * 1024 - 3, 2 * 1024 * 1024 + 10);
  assert.equal(big.length, 2 * 1024 * 1024 + 3);
  assert.ok(big.every((byte) => byte === 7));
});

test('a local file replaced after stat fails the read with ERR_UFS_VERSION_CHANGED', async (t) => {
  const dir = await tree(t);
  const ufs = createUnderFileSystem({ mountPoint: `local://${dir}`, ...none });
  const before = await ufs.stat('top.txt');
  await writeFile(join(dir, 'replacement'), 'hello world');
  await rename(join(dir, 'replacement'), join(dir, 'top.txt'));
  const after = await ufs.stat('top.txt');
  assert.notEqual(before.version, after.version);
  await assert.rejects(readAll(ufs, 'top.txt', 0, 5, before.version), { code: 'ERR_UFS_VERSION_CHANGED' });
  assert.equal((await readAll(ufs, 'top.txt', 0, 5, after.version)).toString(), 'hello');
});

test('local errors carry stable codes: not found, not a directory, is a directory', async (t) => {
  const dir = await tree(t);
  const ufs = createUnderFileSystem({ mountPoint: `local://${dir}`, ...none });
  await assert.rejects(ufs.stat('nope'), (error: unknown) => {
    assert.ok(error instanceof UfsError);
    assert.equal(error.code, 'ERR_UFS_NOT_FOUND');
    assert.equal(error.reason, 'NotFound');
    return true;
  });
  await assert.rejects(collect(ufs.list('top.txt')), { code: 'ERR_UFS_NOT_A_DIRECTORY' });
  await assert.rejects(readAll(ufs, 'a', 0, 1), { code: 'ERR_UFS_IS_A_DIRECTORY' });
  await assert.rejects(ufs.stat('../etc'), TypeError);
  const missing = createUnderFileSystem({ mountPoint: `local://${dir}/absent`, ...none });
  await assert.rejects(missing.check(), { code: 'ERR_UFS_NOT_FOUND' });
});

test('an aborted signal stops a local read with ERR_UFS_ABORTED', async (t) => {
  const dir = await tree(t);
  const ufs = createUnderFileSystem({ mountPoint: `local://${dir}`, ...none });
  const controller = new AbortController();
  const stream = await ufs.read(
    'a/one.bin',
    { offset: 0, length: 3 * 1024 * 1024 },
    { signal: controller.signal },
  );
  await assert.rejects(
    (async () => {
      for await (const chunk of stream) {
        assert.ok(chunk.length > 0);
        controller.abort();
      }
    })(),
    { code: 'ERR_UFS_ABORTED' },
  );
});

test('pvc://name/sub resolves under the pvc root given as a dependency', async (t) => {
  const dir = await tree(t);
  const ufs = createUnderFileSystem({ mountPoint: 'pvc://a/b', ...none }, { pvcRoot: dir });
  assert.deepEqual(
    (await collect(ufs.list(''))).map((entry) => entry.path),
    ['deep file ü+%.txt'],
  );
  assert.throws(() => createUnderFileSystem({ mountPoint: 'pvc://a', ...none }), {
    code: 'ERR_UFS_BAD_CONFIG',
  });
  assert.throws(() => createUnderFileSystem({ mountPoint: 'pvc://../x', ...none }, { pvcRoot: dir }), {
    code: 'ERR_UFS_BAD_CONFIG',
  });
});

test('unknown schemes and relative local paths are refused without I/O', () => {
  assert.throws(() => createUnderFileSystem({ mountPoint: 'hdfs://nn/x', ...none }), {
    code: 'ERR_UFS_UNSUPPORTED',
  });
  assert.throws(
    () =>
      createUnderFileSystem({
        mountPoint: 'local://relative',
        options: {},
        secrets: { x: new SecretValue('s') },
      }),
    { code: 'ERR_UFS_BAD_CONFIG' },
  );
});

test('a local mount stays on its file system: another one mounted inside (proc, tmpfs, FUSE) is not part of it', async (t) => {
  const dir = await tree(t);
  const inner = join(dir, 'a', 'elsewhere');
  await mkdir(inner);
  const mounted = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tide-test', inner]);
  assert.equal(mounted.status, 0, `mount tmpfs: ${String(mounted.stderr)}`);
  // Unmounted here, not in an after hook: the tree's own hook (removing it) runs first.
  try {
    await writeFile(join(inner, 'other.txt'), 'from another file system');
    const ufs = createUnderFileSystem({ mountPoint: `local://${dir}`, ...none });
    const paths = (await collect(ufs.list('', { recursive: true }))).map((entry) => entry.path);
    assert.ok(paths.includes('a/one.bin'));
    assert.ok(!paths.some((path) => path.startsWith('a/elsewhere')), paths.join(', '));
    await assert.rejects(ufs.stat('a/elsewhere/other.txt'), { code: 'ERR_UFS_NOT_FOUND' });
    await assert.rejects(ufs.read('a/elsewhere/other.txt', { offset: 0, length: 5 }), {
      code: 'ERR_UFS_NOT_FOUND',
    });
  } finally {
    spawnSync('umount', [inner]);
  }
});

test('symbolic links are followed only inside the root: one leading out is neither listed nor read', async (t) => {
  const dir = await tree(t);
  const outside = await mkdtemp(join(tmpdir(), 'tide-ufs-outside-'));
  t.after(() => rm(outside, { recursive: true, force: true }));
  await writeFile(join(outside, 'shadow'), 'root:secret');
  await symlink(join(outside, 'shadow'), join(dir, 'out'));
  await symlink(outside, join(dir, 'a', 'outdir'));
  await symlink('../top.txt', join(dir, 'a', 'in'));
  // Loops: back to the root, and back to a directory above.
  await symlink('.', join(dir, 'loop'));
  await symlink('..', join(dir, 'a', 'b', 'to-a'));
  const ufs = createUnderFileSystem({ mountPoint: `local://${dir}`, ...none });
  const paths = (await collect(ufs.list('', { recursive: true }))).map((entry) => entry.path).sort();
  assert.deepEqual(paths, [
    'a',
    'a/b',
    'a/b/deep file ü+%.txt',
    'a/b/to-a',
    'a/in',
    'a/one.bin',
    'empty',
    'loop',
    'top.txt',
  ]);
  assert.equal((await readAll(ufs, 'a/in', 0, 5)).toString(), 'hello');
  assert.equal((await ufs.stat('loop/a/in')).sizeBytes, 11);
  for (const path of ['out', 'a/outdir', 'a/outdir/shadow']) {
    await assert.rejects(ufs.stat(path), { code: 'ERR_UFS_ACCESS_DENIED' }, path);
    await assert.rejects(readAll(ufs, path, 0, 5), { code: 'ERR_UFS_ACCESS_DENIED' }, path);
  }
  await assert.rejects(collect(ufs.list('a/outdir')), { code: 'ERR_UFS_ACCESS_DENIED' });
});

test('a local root reached through a symbolic link is inside itself', async (t) => {
  const dir = await tree(t);
  const link = `${dir}-link`;
  await symlink(dir, link);
  t.after(() => rm(link, { force: true }));
  const ufs = createUnderFileSystem({ mountPoint: `local://${link}`, ...none });
  await ufs.check();
  assert.equal((await readAll(ufs, 'top.txt', 0, 5)).toString(), 'hello');
  assert.ok((await collect(ufs.list('', { recursive: true }))).some((entry) => entry.path === 'a/one.bin'));
});
