import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { startHttpDatasetMount } from './dataset-harness.ts';
import { makeTempDir, run } from './harness.ts';

const SEED_004_ARGS = [
  '-okernel_cache',
  '-oro',
  '-oattr_timeout=60',
  '-oentry_timeout=60',
  '-onegative_timeout=60',
];

async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) assert.fail(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(100);
  }
}

async function lsLR(dir: string): Promise<string> {
  const result = await run('ls', ['-lR', dir]);
  assert.equal(result.code, 0, result.stderr);
  return result.stdout;
}

/** A tree of two directories of files and a subdirectory, on disk for nginx to serve. */
async function makeTree(t: { after(fn: () => Promise<void>): void }): Promise<string> {
  const origin = await makeTempDir('tide-fuse-meta-');
  t.after(() => rm(origin, { recursive: true, force: true }));
  for (const dir of ['a', 'b', 'b/c']) {
    await mkdir(join(origin, dir), { recursive: true });
    for (let index = 0; index < 20; index += 1)
      await writeFile(join(origin, dir, `f${index}`), `${dir} ${index}\n`);
  }
  return origin;
}

describe('the metadata of a dataset mount over an HTTP origin', () => {
  test('listings and attributes are served from memory until the metadata TTL runs out', async (t) => {
    const origin = await makeTree(t);
    const dataset = await startHttpDatasetMount({ root: origin, fuseArgs: SEED_004_ARGS });
    t.after(() => dataset.stop());
    const first = await lsLR(dataset.mount.target);
    assert.match(first, /f19/);
    const requests = (await dataset.nginx.accessLog()).length;
    assert.ok(requests > 0);

    // Every way of reading the tree again: nothing reaches the origin.
    assert.equal(await lsLR(dataset.mount.target), first);
    const found = await run('find', [dataset.mount.target, '-type', 'f']);
    assert.equal(found.stdout.trim().split('\n').length, 60);
    const stats = await run('stat', ['-c', '%s', join(dataset.mount.target, 'b', 'c', 'f7')]);
    assert.equal(stats.stdout, `${'b/c 7\n'.length}\n`);
    const missing = await run('stat', [join(dataset.mount.target, 'a', 'no-such-file')]);
    assert.notEqual(missing.code, 0);
    assert.equal(
      (await dataset.nginx.accessLog()).length,
      requests,
      'no origin request after the first ls -lR',
    );

    // A file added at the origin is not listed until the TTL (60 s here) or an invalidation.
    await writeFile(join(origin, 'a', 'late'), 'late\n');
    assert.doesNotMatch(await lsLR(join(dataset.mount.target, 'a')), /late/);
  });

  test('with a short metadata_ttl a change at the origin shows once the TTL has run out', async (t) => {
    const origin = await makeTree(t);
    const dataset = await startHttpDatasetMount({
      root: origin,
      fuseArgs: ['-oro', '-oattr_timeout=0', '-oentry_timeout=0', '-ometadata_ttl=1'],
    });
    t.after(() => dataset.stop());
    assert.doesNotMatch(await lsLR(dataset.mount.target), /late/);
    await writeFile(join(origin, 'a', 'late'), 'late\n');
    await waitFor('the new file to be listed', async () => /late/.test(await lsLR(dataset.mount.target)));
    assert.equal(await readFile(join(dataset.mount.target, 'a', 'late'), 'utf8'), 'late\n');
  });

  test('a DataLoad that saw a changed or new file drops the cached listing and attributes at once', async (t) => {
    const origin = await makeTree(t);
    const dataset = await startHttpDatasetMount({ root: origin, fuseArgs: SEED_004_ARGS });
    t.after(() => dataset.stop());
    const changed = join(dataset.mount.target, 'a', 'f1');
    assert.equal(await readFile(changed, 'utf8'), 'a 1\n');
    assert.doesNotMatch(await lsLR(join(dataset.mount.target, 'a')), /late/);

    // The origin changes; within the 60 s timeouts the mount still shows what it listed.
    await writeFile(join(origin, 'a', 'f1'), 'a 1, second version, longer\n');
    await writeFile(join(origin, 'a', 'late'), 'late\n');
    await sleep(1100);
    assert.equal(await readFile(changed, 'utf8'), 'a 1\n');
    assert.doesNotMatch(await lsLR(join(dataset.mount.target, 'a')), /late/);

    // A load of /a lists both (the versions only need to differ from the ones the mount saw).
    const entries: [string, string][] = [];
    for (let index = 0; index < 20; index += 1) entries.push([`a/f${index}`, index === 1 ? 'new' : 'same']);
    entries.push(['a/late', 'new']);
    // Versions of the unchanged files as the mount knows them: ask nginx the same way (ETag).
    const etags = await Promise.all(
      entries.map(async ([path]) => {
        const response = await fetch(new URL(path, dataset.nginx.url), { method: 'HEAD' });
        return response.headers.get('etag') ?? '';
      }),
    );
    for (let index = 0; index < entries.length; index += 1) {
      const entry = entries[index] as [string, string];
      if (entry[1] === 'same') entry[1] = etags[index] ?? '';
    }
    await dataset.writeVersions({ targets: ['/a'], entries });
    await waitFor('the new content', async () => (await readFile(changed, 'utf8')) !== 'a 1\n');
    assert.equal(await readFile(changed, 'utf8'), 'a 1, second version, longer\n');
    assert.equal((await stat(changed)).size, 'a 1, second version, longer\n'.length);
    await waitFor('the new file to be listed', async () =>
      /late/.test(await lsLR(join(dataset.mount.target, 'a'))),
    );
    assert.equal(await readFile(join(dataset.mount.target, 'a', 'late'), 'utf8'), 'late\n');
  });
});
