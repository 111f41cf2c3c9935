import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  createDatasetNamespace,
  createUnderFileSystem,
  datasetMountPaths,
  type UnderFileSystem,
} from './index.ts';

async function collect<T>(iterable: AsyncIterable<T>): Promise<T[]> {
  const items: T[] = [];
  for await (const item of iterable) items.push(item);
  return items;
}

async function directoryWith(t: { after: (fn: () => Promise<void>) => void }, files: Record<string, string>) {
  const dir = await mkdtemp(join(tmpdir(), 'tide-ns-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  for (const [path, text] of Object.entries(files)) {
    await mkdir(join(dir, path, '..'), { recursive: true });
    await writeFile(join(dir, path), text);
  }
  return createUnderFileSystem({ mountPoint: `local://${dir}`, options: {}, secrets: {} });
}

test('mounts appear under their paths with made-up parent directories', async (t) => {
  const coco = await directoryWith(t, { 'train/1.jpg': 'one', 'val.txt': 'v' });
  const imagenet = await directoryWith(t, { 'x.bin': 'x' });
  const models = await directoryWith(t, { 'm.safetensors': 'weights' });
  const ns = createDatasetNamespace([
    { path: '/data/coco', ufs: coco },
    { path: '/data/imagenet/', ufs: imagenet },
    { path: '/models', ufs: models },
  ]);
  t.after(() => ns.close());
  await ns.check();
  const names = async (path: string, recursive = false) =>
    (await collect(ns.list(path, { recursive })))
      .map((entry) => `${entry.type[0] ?? ''}:${entry.path}`)
      .sort();
  assert.deepEqual(await names('/'), ['d:data', 'd:models']);
  assert.deepEqual(await names('/data'), ['d:data/coco', 'd:data/imagenet']);
  assert.deepEqual(await names('data/coco'), ['d:data/coco/train', 'f:data/coco/val.txt']);
  assert.deepEqual(await names('', true), [
    'd:data',
    'd:data/coco',
    'd:data/coco/train',
    'd:data/imagenet',
    'd:models',
    'f:data/coco/train/1.jpg',
    'f:data/coco/val.txt',
    'f:data/imagenet/x.bin',
    'f:models/m.safetensors',
  ]);
  assert.equal((await ns.stat('/data')).type, 'directory');
  assert.equal((await ns.stat('/data/coco')).type, 'directory');
  const file = await ns.stat('/data/coco/train/1.jpg');
  assert.equal(file.path, 'data/coco/train/1.jpg');
  assert.equal(file.sizeBytes, 3);
  const chunks = await collect(
    await ns.read(
      '/models/m.safetensors',
      { offset: 0, length: 7 },
      { version: (await ns.stat('models/m.safetensors')).version },
    ),
  );
  assert.equal(Buffer.concat(chunks).toString(), 'weights');
  assert.deepEqual(ns.resolve('/data/coco/train/1.jpg')?.path, 'train/1.jpg');
  assert.equal(ns.resolve('/data/coco/train/1.jpg')?.mount.ufs, coco);
  assert.equal(ns.resolve('/data'), undefined);
  await assert.rejects(ns.stat('/elsewhere'), { code: 'ERR_UFS_NOT_FOUND' });
  await assert.rejects(ns.read('/data', { offset: 0, length: 1 }), { code: 'ERR_UFS_IS_A_DIRECTORY' });
  await assert.rejects(collect(ns.list('/nope')), { code: 'ERR_UFS_NOT_FOUND' });
});

test('a single mount at / serves the dataset root directly', async (t) => {
  const only = await directoryWith(t, { 'a/b.txt': 'b' });
  const ns = createDatasetNamespace([{ path: '/', ufs: only }]);
  t.after(() => ns.close());
  assert.deepEqual(
    (await collect(ns.list('/'))).map((entry) => entry.path),
    ['a'],
  );
  assert.equal((await ns.stat('/a/b.txt')).path, 'a/b.txt');
  assert.equal(ns.resolve('/a/b.txt')?.path, 'a/b.txt');
});

test('a mount at / beside others, duplicate paths and nested mounts are refused', async (t) => {
  const one: UnderFileSystem = await directoryWith(t, {});
  const two: UnderFileSystem = await directoryWith(t, {});
  const refused = { code: 'ERR_UFS_BAD_CONFIG' };
  assert.throws(
    () =>
      createDatasetNamespace([
        { path: '/', ufs: one },
        { path: '/x', ufs: two },
      ]),
    refused,
  );
  assert.throws(
    () =>
      createDatasetNamespace([
        { path: '/x', ufs: one },
        { path: '/x/', ufs: two },
      ]),
    refused,
  );
  assert.throws(
    () =>
      createDatasetNamespace([
        { path: '/x', ufs: one },
        { path: '/x/y', ufs: two },
      ]),
    refused,
  );
  assert.throws(() => createDatasetNamespace([]), refused);
});

test('dataset mount paths follow Fluid: path, else /name, else / for a single mount', () => {
  assert.deepEqual(
    datasetMountPaths([
      { mountPoint: 'local:///a', path: '/p/q/' },
      { mountPoint: 'local:///b', name: 'bee' },
    ]),
    ['/p/q', '/bee'],
  );
  assert.deepEqual(datasetMountPaths([{ mountPoint: 'local:///a' }]), ['/']);
  assert.throws(
    () => datasetMountPaths([{ mountPoint: 'local:///a' }, { mountPoint: 'local:///b', name: 'b' }]),
    {
      code: 'ERR_UFS_BAD_CONFIG',
    },
  );
});
