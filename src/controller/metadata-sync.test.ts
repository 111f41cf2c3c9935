import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import { EventEmitter } from 'node:events';
import { silentLogger } from '../lib/index.ts';
import { createUnderFileSystem, UfsError } from '../ufs/index.ts';
import type { ResolvedMount } from '../platform/index.ts';
import { MetadataSync, type MetadataState } from './metadata-sync.ts';

/** Runs one sync of `dir` to its end and returns its state. */
async function syncOnce(
  dir: string,
  maxEntries?: number,
): Promise<{ state: MetadataState; sync: MetadataSync; mounts: ResolvedMount[] }> {
  const ended = new EventEmitter();
  let closed = 0;
  const sync = new MetadataSync({
    ufsFactory: (mount) => {
      const ufs = createUnderFileSystem(mount);
      const close = ufs.close.bind(ufs);
      ufs.close = async () => {
        closed += 1;
        await close();
      };
      return ufs;
    },
    onChange: () => {
      if (sync.state('ns/ds')?.running === false) ended.emit('end');
    },
    logger: silentLogger(),
    ...(maxEntries === undefined ? {} : { maxEntries }),
  });
  const end = once(ended, 'end');
  const mounts = [{ mountPoint: `local://${dir}`, options: {}, secrets: {}, path: '/' }];
  sync.ensure('ns/ds', mounts, { autoSync: true, intervalMs: 600_000 });
  await end;
  assert.equal(closed, 1);
  const state = sync.state('ns/ds');
  assert.ok(state !== undefined);
  return { state, sync, mounts };
}

test('a metadata sync beyond its bound of entries stops and says so instead of walking on', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'tide-metadata-sync-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  for (let d = 0; d < 5; d += 1) {
    await mkdir(join(dir, `d${d}`));
    for (let f = 0; f < 10; f += 1) await writeFile(join(dir, `d${d}`, `f${f}`), 'x');
  }
  const { state: full } = await syncOnce(dir, 55);
  assert.deepEqual(full.result === undefined ? undefined : { ...full.result, finishedAtMs: 0 }, {
    files: 50,
    bytes: 50,
    finishedAtMs: 0,
  });
  assert.equal(full.error, undefined);

  const { state: bounded, sync, mounts } = await syncOnce(dir, 54);
  assert.equal(bounded.result, undefined);
  assert.ok(bounded.error instanceof UfsError, String(bounded.error));
  assert.equal(bounded.error.code, 'ERR_UFS_TOO_MANY_ENTRIES');
  assert.equal(bounded.error.reason, 'TooManyEntries');
  assert.match(bounded.error.message, /more than 54 entries/);
  assert.ok(bounded.progress.files < 50);
  // The next reconcile does not start it again before the sync interval: that would walk forever.
  sync.ensure('ns/ds', mounts, { autoSync: true, intervalMs: 600_000 });
  assert.equal(sync.state('ns/ds')?.running, false);
});

test('a metadata sync that failed on its origin is retried after 30 s, not at once nor after the interval', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'tide-metadata-sync-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  let nowMs = 1_000_000;
  const ended = new EventEmitter();
  const sync = new MetadataSync({
    ufsFactory: (mount) => createUnderFileSystem(mount),
    onChange: () => {
      if (sync.state('ns/ds')?.running === false) ended.emit('end');
    },
    logger: silentLogger(),
    now: () => nowMs,
  });
  // The origin is missing: the walk fails at once.
  const mounts = [{ mountPoint: `local://${join(dir, 'gone')}`, options: {}, secrets: {}, path: '/' }];
  const policy = { autoSync: true, intervalMs: 600_000 };
  let end = once(ended, 'end');
  sync.ensure('ns/ds', mounts, policy);
  await end;
  assert.ok(sync.state('ns/ds')?.error !== undefined, 'the first walk failed');
  nowMs += 29_000;
  sync.ensure('ns/ds', mounts, policy);
  assert.equal(sync.state('ns/ds')?.running, false, 'not again within 30 s');
  await mkdir(join(dir, 'gone'));
  await writeFile(join(dir, 'gone', 'f'), 'xy');
  nowMs += 2_000;
  end = once(ended, 'end');
  sync.ensure('ns/ds', mounts, policy);
  assert.equal(sync.state('ns/ds')?.running, true, 'again after 30 s');
  await end;
  assert.equal(sync.state('ns/ds')?.result?.files, 1);
});
