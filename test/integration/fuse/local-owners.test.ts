/**
 * A local origin through the dataset mount keeps its owners and modes, and with
 * default_permissions the kernel refuses another user what the origin would refuse them.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmod, chown, mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DATASET_SOURCE } from './dataset-harness.ts';
import { startMount } from './harness.ts';

test('a local origin keeps owner and mode through the mount, and the kernel checks them', async (t) => {
  const work = await mkdtemp(join(tmpdir(), 'tide-owners-'));
  // One hook, in this order: the directory holds the mount point.
  let stopMount: () => Promise<void> = () => Promise.resolve();
  t.after(async () => {
    await stopMount();
    await rm(work, { recursive: true, force: true });
  });
  // Other users must be able to reach the mount point for the kernel to be the one refusing.
  await chmod(work, 0o755);
  const origin = join(work, 'origin');
  await mkdir(origin, { mode: 0o755 });
  await chmod(origin, 0o755);
  await writeFile(join(origin, 'shadow'), 'root only\n');
  await chmod(join(origin, 'shadow'), 0o600);
  await writeFile(join(origin, 'public'), 'for everyone\n');
  await chmod(join(origin, 'public'), 0o644);
  await chown(join(origin, 'public'), 1234, 1235);
  const membershipPath = join(work, 'members.json');
  await writeFile(membershipPath, JSON.stringify({ workers: [] }));
  const configPath = join(work, 'dataset.json');
  await writeFile(
    configPath,
    JSON.stringify({
      datasetId: 'default/owners',
      token: randomBytes(32).toString('base64url'),
      blockSizeBytes: 4 * 1024 * 1024,
      membershipPath,
      pvcRoot: work,
      mounts: [{ path: '/', mountPoint: `local://${origin}`, options: {}, secrets: {} }],
    }),
  );
  const target = join(work, 'mnt');
  await mkdir(target, { mode: 0o755 });
  const mount = await startMount({
    sourceDir: origin,
    target,
    fuseArgs: ['-oallow_other', '-odefault_permissions'],
    source: { kind: 'tide-dataset', module: DATASET_SOURCE, options: { configPath } },
  });
  stopMount = () => mount.stop();
  const shadow = await stat(join(target, 'shadow'));
  assert.equal((shadow.mode & 0o777).toString(8), '400', 'the origin mode without write bits');
  assert.equal(shadow.uid, process.getuid?.());
  const open = await stat(join(target, 'public'));
  assert.equal((open.mode & 0o777).toString(8), '444');
  assert.deepEqual([open.uid, open.gid], [1234, 1235]);
  const asNobody = (path: string) =>
    spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', 'cat', path], {
      encoding: 'utf8',
    });
  const refused = asNobody(join(target, 'shadow'));
  assert.notEqual(refused.status, 0);
  assert.match(refused.stderr, /Permission denied/);
  assert.equal(asNobody(join(target, 'public')).stdout, 'for everyone\n');
});
