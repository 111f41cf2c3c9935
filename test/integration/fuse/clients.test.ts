import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { spawn } from 'node:child_process';
import { mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { deterministicBytes, makeTempDir, run, sh, startMount, isMounted } from './harness.ts';
import type { MountedDataset } from './harness.ts';

const BIG_BYTES = 48 * 1024 * 1024;

/** A dataset with a tree of small files, a large file, odd names, an empty file and a SQLite database. */
async function makeDataset(root: string): Promise<void> {
  for (let dir = 0; dir < 12; dir += 1) {
    const path = join(root, 'tree', `d${String(dir).padStart(2, '0')}`);
    await mkdir(path, { recursive: true });
    for (let file = 0; file < 20; file += 1) {
      const size = ((dir * 20 + file) * 7919) % (96 * 1024);
      await writeFile(
        join(path, `f${String(file).padStart(2, '0')}.bin`),
        deterministicBytes(`tree/${dir}/${file}`, size),
      );
    }
  }
  await mkdir(join(root, 'tree', 'empty-dir'));
  await writeFile(join(root, 'big.bin'), deterministicBytes('big', BIG_BYTES));
  await writeFile(join(root, 'space name.txt'), 'spaces are fine\n');
  await writeFile(join(root, 'ünïcödé.txt'), 'utf-8 names are fine\n');
  await writeFile(join(root, 'empty.txt'), '');
  const created = await sh(
    `sqlite3 ${join(root, 'data.db')} "PRAGMA page_size=4096; CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT, value REAL);
     WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < 20000)
     INSERT INTO t SELECT x, printf('name-%08d', x), x * 1.5 FROM c; CREATE INDEX t_name ON t(name);"`,
  );
  assert.equal(created.code, 0, created.stderr);
}

describe('a FUSE mount of a local directory, used by real clients', () => {
  let origin = '';
  let scratch = '';
  let mount: MountedDataset;

  before(async () => {
    origin = await makeTempDir('tide-fuse-origin-');
    scratch = await makeTempDir('tide-fuse-scratch-');
    await makeDataset(origin);
    mount = await startMount({
      sourceDir: origin,
      fuseArgs: ['-oallow_other', '-oattr_timeout=1', '-oentry_timeout=1'],
    });
  });

  after(async () => {
    await mount.stop();
    assert.equal(await isMounted(mount.target), false, 'the mount is gone after stop');
    await rm(origin, { recursive: true, force: true });
    await rm(scratch, { recursive: true, force: true });
  });

  test('cp -r copies the tree byte for byte', async () => {
    const copied = await run('cp', ['-r', join(mount.target, 'tree'), join(scratch, 'cp-tree')]);
    assert.equal(copied.code, 0, copied.stderr);
    const diff = await run('diff', ['-r', join(origin, 'tree'), join(scratch, 'cp-tree')]);
    assert.equal(diff.code, 0, diff.stdout);
  });

  test('tar c of the mount extracts to the same tree', async () => {
    await mkdir(join(scratch, 'untar'));
    const tarred = await sh(
      `tar c -C ${JSON.stringify(mount.target)} tree | tar x -C ${JSON.stringify(join(scratch, 'untar'))}`,
    );
    assert.equal(tarred.code, 0, tarred.stderr);
    const diff = await run('diff', ['-r', join(origin, 'tree'), join(scratch, 'untar', 'tree')]);
    assert.equal(diff.code, 0, diff.stdout);
  });

  test('find lists every path with the size it has at the origin', async () => {
    const listing = (dir: string): Promise<string> =>
      sh(`cd ${JSON.stringify(dir)} && find . -type f -printf '%s %p\\n' | LC_ALL=C sort`).then((result) => {
        assert.equal(result.code, 0, result.stderr);
        return result.stdout;
      });
    const [mounted, original] = await Promise.all([listing(mount.target), listing(origin)]);
    assert.equal(mounted, original);
    assert.ok(mounted.includes('./ünïcödé.txt') && mounted.includes('./space name.txt'));
    const dirs = await sh(`cd ${JSON.stringify(mount.target)} && find . -type d | LC_ALL=C sort`);
    assert.ok(dirs.stdout.includes('./tree/empty-dir\n'), dirs.stdout);
  });

  test('ls -lR shows every entry, read-only, with its size', async () => {
    const listed = await run('ls', ['-lR', join(mount.target, 'tree')]);
    assert.equal(listed.code, 0, listed.stderr);
    const files = listed.stdout.split('\n').filter((line) => line.startsWith('-'));
    assert.equal(files.length, 240);
    assert.ok(
      files.every((line) => line.startsWith('-r--r--r--')),
      files[0],
    );
    const size = (await stat(join(origin, 'tree', 'd03', 'f07.bin'))).size;
    assert.ok(listed.stdout.includes(` ${size} `), `a size of ${size} appears`);
  });

  test('sha256sum of a large file matches the origin', async () => {
    const summed = await run('sha256sum', [join(mount.target, 'big.bin')]);
    assert.equal(summed.code, 0, summed.stderr);
    const expected = createHash('sha256')
      .update(await readFile(join(origin, 'big.bin')))
      .digest('hex');
    assert.equal(summed.stdout.split(' ')[0], expected);
  });

  test('fio completes sequential 1 MiB and random 4 KiB reads', async () => {
    const common = [
      '--readonly',
      '--ioengine=psync',
      `--filename=${join(mount.target, 'big.bin')}`,
      `--size=${BIG_BYTES}`,
      '--output-format=json',
    ];
    const sequential = await run('fio', ['--name=seq', '--rw=read', '--bs=1M', ...common], {
      timeoutMs: 60_000,
    });
    assert.equal(sequential.code, 0, sequential.stderr);
    const random = await run(
      'fio',
      ['--name=rand', '--rw=randread', '--bs=4k', '--runtime=2', '--time_based', '--numjobs=2', ...common],
      {
        timeoutMs: 60_000,
      },
    );
    assert.equal(random.code, 0, random.stderr);
    for (const result of [sequential, random]) {
      const report = JSON.parse(result.stdout) as { jobs: { error: number; read: { io_bytes: number } }[] };
      assert.ok(
        report.jobs.every((job) => job.error === 0 && job.read.io_bytes > 0),
        result.stdout.slice(0, 500),
      );
    }
  });

  test('python os.walk sees the tree and mmap reads the same bytes', async () => {
    const script = `
import os, sys, mmap, hashlib
root = sys.argv[1]
files = sizes = 0
for dirpath, dirnames, filenames in os.walk(os.path.join(root, 'tree')):
    for name in filenames:
        files += 1
        sizes += os.path.getsize(os.path.join(dirpath, name))
with open(os.path.join(root, 'big.bin'), 'rb') as handle:
    with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
        digest = hashlib.sha256(mapped).hexdigest()
        tail = mapped[-4096:].hex()
print(files, sizes, digest, tail)
`;
    const [mounted, original] = await Promise.all([
      run('python3', ['-c', script, mount.target]),
      run('python3', ['-c', script, origin]),
    ]);
    assert.equal(mounted.code, 0, mounted.stderr);
    assert.equal(mounted.stdout, original.stdout);
    assert.match(mounted.stdout, /^240 /);
  });

  test('sqlite3 answers queries on a database file in the dataset', async () => {
    const query =
      "SELECT count(*), sum(value), max(name) FROM t; SELECT name FROM t WHERE id IN (7, 1999, 19999) ORDER BY id; SELECT id FROM t WHERE name = 'name-00012345';";
    const mounted = await run('sqlite3', [
      '-readonly',
      `file:${join(mount.target, 'data.db')}?mode=ro`,
      query,
    ]);
    assert.equal(mounted.code, 0, mounted.stderr);
    const original = await run('sqlite3', ['-readonly', join(origin, 'data.db'), query]);
    assert.equal(mounted.stdout, original.stdout);
    assert.match(mounted.stdout, /^20000\|/);
  });

  test('du and stat report the sizes of the origin', async () => {
    const du = await run('du', ['-sb', '--apparent-size', join(mount.target, 'big.bin')]);
    assert.equal(du.stdout.split('\t')[0], String(BIG_BYTES));
    const mountedStat = await run('stat', [
      '-c',
      '%s %F %a',
      join(mount.target, 'space name.txt'),
      join(mount.target, 'tree'),
    ]);
    assert.equal(mountedStat.stdout, '16 regular file 444\n4096 directory 555\n');
    const empty = await run('stat', ['-c', '%s', join(mount.target, 'empty.txt')]);
    assert.equal(empty.stdout, '0\n');
    const statfs = await run('stat', ['-f', '-c', '%T', mount.target]);
    assert.equal(statfs.code, 0, statfs.stderr);
  });

  test('writes fail with EROFS and a missing file with ENOENT', async () => {
    const attempts = [
      `touch ${JSON.stringify(join(mount.target, 'new.txt'))}`,
      `mkdir ${JSON.stringify(join(mount.target, 'newdir'))}`,
      `rm ${JSON.stringify(join(mount.target, 'empty.txt'))}`,
      `mv ${JSON.stringify(join(mount.target, 'empty.txt'))} ${JSON.stringify(join(mount.target, 'moved.txt'))}`,
      `echo x >> ${JSON.stringify(join(mount.target, 'empty.txt'))}`,
    ];
    for (const attempt of attempts) {
      const result = await sh(`LC_ALL=C ${attempt}`);
      assert.notEqual(result.code, 0, attempt);
      assert.match(result.stderr, /Read-only file system/, attempt);
    }
    const missing = await run('stat', [join(mount.target, 'no-such-file')]);
    assert.match(missing.stderr, /No such file or directory/);
  });

  test('a file changed at the origin is read fresh on its next open', async () => {
    const path = join(origin, 'changing.txt');
    await writeFile(path, 'version one\n');
    assert.equal(await readFile(join(mount.target, 'changing.txt'), 'utf8'), 'version one\n');
    await writeFile(path, 'version two\n'); // same size: only the version tells
    assert.equal(await readFile(join(mount.target, 'changing.txt'), 'utf8'), 'version two\n');
    await writeFile(path, 'version three, longer than before\n');
    assert.equal(
      await readFile(join(mount.target, 'changing.txt'), 'utf8'),
      'version three, longer than before\n',
    );
  });
});

describe('a FUSE mount without the read-only mount flag, reading the device in the threadpool', () => {
  test('the server itself answers every write-type request with EROFS (and xattr calls, with -oxattr)', async (t) => {
    const origin = await makeTempDir('tide-fuse-rw-');
    t.after(() => rm(origin, { recursive: true, force: true }));
    await writeFile(join(origin, 'file.txt'), 'content\n');
    const mount = await startMount({
      sourceDir: origin,
      fuseArgs: ['-orw', '-oxattr'],
      deviceIo: 'threadpool',
    });
    t.after(() => mount.stop());
    const attempts = [
      `touch ${JSON.stringify(join(mount.target, 'new.txt'))}`,
      `mkdir ${JSON.stringify(join(mount.target, 'dir'))}`,
      `echo x > ${JSON.stringify(join(mount.target, 'file.txt'))}`,
      `rm ${JSON.stringify(join(mount.target, 'file.txt'))}`,
      `ln -s a ${JSON.stringify(join(mount.target, 'link'))}`,
      `chmod 600 ${JSON.stringify(join(mount.target, 'file.txt'))}`,
    ];
    for (const attempt of attempts) {
      const result = await sh(`LC_ALL=C ${attempt}`);
      assert.notEqual(result.code, 0, attempt);
      assert.match(result.stderr, /Read-only file system/, attempt);
    }
    assert.equal(await readFile(join(origin, 'file.txt'), 'utf8'), 'content\n');
    const python = await run('python3', [
      '-c',
      `import os, errno
try:
    os.truncate(${JSON.stringify(join(mount.target, 'file.txt'))}, 0)
except OSError as e:
    print(errno.errorcode[e.errno])
try:
    os.getxattr(${JSON.stringify(join(mount.target, 'file.txt'))}, 'user.x')
except OSError as e:
    print(errno.errorcode[e.errno])
print(os.listxattr(${JSON.stringify(join(mount.target, 'file.txt'))}))`,
    ]);
    assert.equal(python.stdout, 'EROFS\nENODATA\n[]\n', python.stderr);
  });
});

describe('a FUSE mount by default (no_xattr)', () => {
  test('answers xattr calls ENOSYS once, so the kernel itself reports EOPNOTSUPP (ENOTSUP)', async (t) => {
    const origin = await makeTempDir('tide-fuse-xattr-');
    t.after(() => rm(origin, { recursive: true, force: true }));
    await writeFile(join(origin, 'file.txt'), 'content\n');
    const mount = await startMount({ sourceDir: origin });
    t.after(() => mount.stop());
    const file = JSON.stringify(join(mount.target, 'file.txt'));
    const python = await run('python3', [
      '-c',
      `import os, errno
for call in (lambda: os.getxattr(${file}, 'user.x'), lambda: os.listxattr(${file}), lambda: os.getxattr(${file}, 'user.y')):
    try:
        call()
    except OSError as e:
        print(errno.errorcode[e.errno])`,
    ]);
    assert.equal(python.stdout, 'ENOTSUP\nENOTSUP\nENOTSUP\n', python.stderr);
    const listed = await run('ls', ['-l', mount.target]);
    assert.equal(listed.code, 0, listed.stderr);
    // Tools that copy extended attributes treat EOPNOTSUPP as "none", as on any filesystem without them.
    const copy = await makeTempDir('tide-fuse-xattr-copy-');
    t.after(() => rm(copy, { recursive: true, force: true }));
    const copied = await run('cp', ['-a', join(mount.target, 'file.txt'), join(copy, 'file.txt')]);
    assert.equal(copied.code, 0, copied.stderr);
    assert.equal(copied.stderr, '');
    assert.equal(await readFile(join(copy, 'file.txt'), 'utf8'), 'content\n');
    const tar = await sh(`tar --xattrs -cf - -C ${JSON.stringify(mount.target)} file.txt | tar -tf -`);
    assert.equal(tar.code, 0, tar.stderr);
    assert.equal(tar.stdout, 'file.txt\n');
  });
});

describe('the kernel keeps directory listings', () => {
  test('of directories without an mtime: listed from the source once, then from the page cache', async (t) => {
    const origin = await makeTempDir('tide-fuse-dircache-');
    t.after(() => rm(origin, { recursive: true, force: true }));
    for (const dir of ['a', 'a/b']) {
      await mkdir(join(origin, dir), { recursive: true });
      for (let index = 0; index < 30; index += 1) await writeFile(join(origin, dir, `f${index}`), 'x');
    }
    const logPath = join(origin, '..', `${basename(origin)}.readdir.log`);
    t.after(() => rm(logPath, { force: true }));
    const mount = await startMount({
      sourceDir: origin,
      fuseArgs: ['-oattr_timeout=60', '-oentry_timeout=60'],
      source: {
        kind: 'unversioned-test',
        module: join(import.meta.dirname, 'unversioned-source.ts'),
        dir: origin,
        options: { logPath },
      },
    });
    t.after(() => mount.stop());
    const first = await run('ls', ['-lR', mount.target]);
    assert.equal(first.code, 0, first.stderr);
    // `find` and another `ls -lR` right after, as a scan after a listing does.
    const found = await run('find', [mount.target]);
    assert.equal(found.stdout.trim().split('\n').length, 1 + 2 + 60);
    assert.equal((await run('ls', ['-lR', mount.target])).stdout, first.stdout);
    const listings = (await readFile(logPath, 'utf8')).trim().split('\n').sort();
    assert.deepEqual(listings, ['/', '/a', '/a/b'], 'each directory listed from the source once');
  });
});

describe('a FUSE mount whose source is slow for one file', () => {
  test('a slow read blocks neither metadata nor reads of other files', async (t) => {
    const origin = await makeTempDir('tide-fuse-slow-');
    t.after(() => rm(origin, { recursive: true, force: true }));
    await writeFile(join(origin, 'slow.bin'), deterministicBytes('slow', 1024 * 1024));
    await writeFile(join(origin, 'fast.bin'), deterministicBytes('fast', 1024 * 1024));
    const mount = await startMount({
      sourceDir: origin,
      source: {
        kind: 'slow-test',
        module: join(import.meta.dirname, 'slow-source.ts'),
        dir: origin,
        options: { delayMs: 4000 },
      },
    });
    t.after(() => mount.stop());
    const startedAt = Date.now();
    const slow = run('sha256sum', [join(mount.target, 'slow.bin')]);
    await new Promise((resolve) => setTimeout(resolve, 300));
    const quick = await sh(
      `ls -l ${JSON.stringify(mount.target)} && stat ${JSON.stringify(join(mount.target, 'fast.bin'))} && sha256sum ${JSON.stringify(join(mount.target, 'fast.bin'))}`,
    );
    const quickDoneMs = Date.now() - startedAt;
    assert.equal(quick.code, 0, quick.stderr);
    assert.ok(
      quickDoneMs < 3500,
      `metadata and the other file were served in ${quickDoneMs} ms, while the slow read waits 4000 ms`,
    );
    const slowResult = await slow;
    assert.equal(slowResult.code, 0, slowResult.stderr);
    assert.ok(Date.now() - startedAt >= 3900, 'the slow read did wait');
    assert.equal(
      slowResult.stdout.split(' ')[0],
      createHash('sha256')
        .update(deterministicBytes('slow', 1024 * 1024))
        .digest('hex'),
    );
  });

  test('an interrupted request aborts the source call it started', async (t) => {
    const origin = await makeTempDir('tide-fuse-intr-');
    const markers = await makeTempDir('tide-fuse-markers-');
    t.after(() => rm(origin, { recursive: true, force: true }));
    t.after(() => rm(markers, { recursive: true, force: true }));
    await writeFile(join(origin, 'slow-meta.txt'), 'x');
    const mount = await startMount({
      sourceDir: origin,
      source: {
        kind: 'slow-test',
        module: join(import.meta.dirname, 'slow-source.ts'),
        dir: origin,
        options: { delayMs: 20_000, markerDir: markers },
      },
    });
    t.after(() => mount.stop());
    const stat = spawn('stat', [join(mount.target, 'slow-meta.txt')], { stdio: 'ignore' });
    const exited = new Promise((resolve) => stat.on('exit', resolve));
    await new Promise((resolve) => setTimeout(resolve, 500));
    stat.kill('SIGINT');
    // The kernel sends FUSE_INTERRUPT; the server aborts the getattr, which leaves a marker.
    const marker = join(markers, '_slow-meta.txt');
    const deadline = Date.now() + 5000;
    while (!(await isPresent(marker)) && Date.now() < deadline)
      await new Promise((resolve) => setTimeout(resolve, 50));
    assert.ok(await isPresent(marker), 'the source call was aborted within 5 s, not after its 20 s delay');
    await exited;
  });
});

async function isPresent(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}
