import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createCacheClient, mountIdOf, StaticMembership } from '../../../src/cache/index.ts';
import { DatasetFileSource } from '../../../src/platform/dataset-file-source.ts';
import { createUnderFileSystem } from '../../../src/ufs/index.ts';
import { startNginx } from '../../helpers/nginx.ts';
import { makeTempDir } from './harness.ts';

const signal = new AbortController().signal;

test('the dataset source lists each directory once, keeps 25 entries, and forgets what is invalidated', async (t) => {
  const origin = await makeTempDir('tide-dataset-source-');
  t.after(() => rm(origin, { recursive: true, force: true }));
  for (const dir of ['a', 'b']) {
    await mkdir(join(origin, dir));
    for (let index = 0; index < 20; index += 1) await writeFile(join(origin, dir, `f${index}`), dir);
  }
  const nginx = await startNginx({ root: origin });
  t.after(() => nginx.stop());
  const ufs = createUnderFileSystem({ mountPoint: nginx.url, options: {}, secrets: {} });
  const client = createCacheClient({
    datasetId: 'default/test',
    membership: new StaticMembership([]),
    blockSizeBytes: 1024 * 1024,
    mounts: [{ id: mountIdOf(nginx.url), path: '/', ufs }],
  });
  const close = async (): Promise<void> => {
    await client.close();
    await ufs.close();
  };
  const source = new DatasetFileSource(client, close, {
    metadataTtlMs: 600_000,
    maxListedEntries: 25,
  });
  t.after(() => source.close());
  const requests = async (): Promise<number> => (await nginx.accessLog()).length;
  const indexPagesOf = async (dir: string): Promise<number> =>
    (await nginx.accessLog()).filter((record) => record.method === 'GET' && record.target === dir).length;

  // Two READDIRs at once list the origin once.
  const [first, second] = await Promise.all([source.readdir('/a', signal), source.readdir('/a', signal)]);
  assert.equal(first, second);
  assert.deepEqual(
    first.map((entry) => entry.name),
    Array.from({ length: 20 }, (_, index) => `f${index}`).sort(),
  );
  assert.equal(await indexPagesOf('/a/'), 1);
  const listed = await requests();

  // Children's attributes, present or not, come from the listing.
  assert.equal((await source.getattr('/a/f3', signal))?.sizeBytes, 1);
  assert.equal(await source.getattr('/a/missing', signal), undefined);
  assert.equal((await source.readdir('/a', signal)).length, 20);
  assert.equal(await requests(), listed);

  // Listing /b goes over the bound of 25 entries: /a, the least recently used, is evicted whole.
  await source.readdir('/b', signal);
  assert.equal(await indexPagesOf('/b/'), 1);
  assert.equal(source.isListed('/a'), false);
  await source.readdir('/a', signal);
  assert.equal(await indexPagesOf('/a/'), 2);

  // A file a DataLoad found changed drops the listing of its directory.
  await writeFile(join(origin, 'a', 'f3'), 'changed');
  assert.equal((await source.getattr('/a/f3', signal))?.sizeBytes, 1);
  const changed: string[] = [];
  source.subscribe((path) => changed.push(path));
  source.invalidate(['/a/f3']);
  assert.deepEqual(changed, ['/a/f3']);
  assert.equal((await source.getattr('/a/f3', signal))?.sizeBytes, 'changed'.length);
});
