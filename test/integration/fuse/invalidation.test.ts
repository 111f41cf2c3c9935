import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { open, readFile, rm, stat, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { FileHandle } from 'node:fs/promises';
import { deterministicBytes, makeTempDir, run, startMount } from './harness.ts';

/** Bytes of `path` in the page cache, as fincore(1) reports them (fincore opens the file itself). */
async function residentBytes(path: string): Promise<number> {
  const result = await run('fincore', ['--bytes', '--noheadings', '--output', 'RES', path]);
  assert.equal(result.code, 0, result.stderr);
  return Number(result.stdout.trim());
}

async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) assert.fail(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(50);
  }
}

const exists = (path: string): Promise<boolean> =>
  stat(path).then(
    () => true,
    () => false,
  );

describe('the kernel page cache of a FUSE mount', () => {
  test('is kept across opens while the version is unchanged and dropped when it changes', async (t) => {
    const origin = await makeTempDir('tide-fuse-keep-');
    t.after(() => rm(origin, { recursive: true, force: true }));
    const size = 4 * 1024 * 1024;
    await writeFile(join(origin, 'data.bin'), deterministicBytes('one', size));
    const mount = await startMount({ sourceDir: origin });
    t.after(() => mount.stop());
    const file = join(mount.target, 'data.bin');

    assert.deepEqual(await readFile(file), deterministicBytes('one', size));
    assert.equal(await residentBytes(file), size, 'a second open keeps the pages (FOPEN_KEEP_CACHE)');
    assert.equal(await residentBytes(file), size);

    await writeFile(join(origin, 'data.bin'), deterministicBytes('two', size));
    assert.equal(await residentBytes(file), 0, 'an open after a version change drops the old pages');
    assert.deepEqual(await readFile(file), deterministicBytes('two', size));
  });

  test('with kernel_cache and 60 s timeouts, a change the source reports reaches an open file at once', async (t) => {
    const origin = await makeTempDir('tide-fuse-notify-');
    t.after(() => rm(origin, { recursive: true, force: true }));
    await writeFile(join(origin, 'watched.txt'), 'first version\n');
    await writeFile(join(origin, 'doomed.txt'), 'short-lived\n');
    const mount = await startMount({
      sourceDir: origin,
      fuseArgs: [
        '-okernel_cache',
        '-oro',
        '-oattr_timeout=60',
        '-oentry_timeout=60',
        '-onegative_timeout=60',
      ],
      sourceOptions: { watch: true },
    });
    const held: { handle?: FileHandle } = {};
    // The file must be closed before the unmount, or close(2) meets a detached mount (ENOTCONN).
    t.after(async () => {
      await held.handle?.close();
      await mount.stop();
    });
    // The test process holds the file open: no new OPEN will come to revalidate it.
    const opened = await open(join(mount.target, 'watched.txt'), 'r');
    held.handle = opened;
    const readAll = async (): Promise<string> => {
      const buffer = Buffer.alloc(64);
      const { bytesRead } = await opened.read(buffer, 0, 64, 0);
      return buffer.toString('utf8', 0, bytesRead);
    };
    assert.equal(await readAll(), 'first version\n');
    await writeFile(join(origin, 'watched.txt'), 'second version\n');
    // FUSE_NOTIFY_INVAL_INODE drops the pages and the 60 s attributes (the size grew by one byte).
    await waitFor(
      'the open file to show the new content',
      async () => (await readAll()) === 'second version\n',
    );

    // A negative entry cached for 60 s is dropped by FUSE_NOTIFY_INVAL_ENTRY when the file appears…
    assert.equal(await exists(join(mount.target, 'late.txt')), false);
    await writeFile(join(origin, 'late.txt'), 'arrived\n');
    await waitFor('a new file to appear despite negative_timeout=60', () =>
      exists(join(mount.target, 'late.txt')),
    );
    assert.equal(await readFile(join(mount.target, 'late.txt'), 'utf8'), 'arrived\n');

    // …and a positive one when it goes.
    assert.equal(await exists(join(mount.target, 'doomed.txt')), true);
    await unlink(join(origin, 'doomed.txt'));
    await waitFor(
      'a deleted file to disappear despite entry_timeout=60',
      async () => !(await exists(join(mount.target, 'doomed.txt'))),
    );
  });

  test('a cached directory listing is refreshed on the next opendir once the directory changed', async (t) => {
    const origin = await makeTempDir('tide-fuse-dir-');
    t.after(() => rm(origin, { recursive: true, force: true }));
    await writeFile(join(origin, 'a.txt'), 'a');
    const mount = await startMount({ sourceDir: origin, fuseArgs: ['-oattr_timeout=60,entry_timeout=60'] });
    t.after(() => mount.stop());
    const list = async (): Promise<string> => (await run('ls', [mount.target])).stdout;
    assert.equal(await list(), 'a.txt\n');
    assert.equal(await list(), 'a.txt\n', 'served from the kept listing (FOPEN_CACHE_DIR)');
    await writeFile(join(origin, 'b.txt'), 'b');
    assert.equal(await list(), 'a.txt\nb.txt\n');
    await unlink(join(origin, 'a.txt'));
    assert.equal(await list(), 'b.txt\n');
  });
});
