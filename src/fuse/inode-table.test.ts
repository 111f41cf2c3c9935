import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, appendFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InodeTable } from './inode-table.ts';

test('gives each path one nodeid and never reuses a forgotten one', () => {
  const table = new InodeTable();
  const a = table.remember('/a', 'file');
  assert.equal(table.remember('/a', 'file'), a);
  assert.equal(a.lookups, 2);
  table.forget(a.nodeid, 2);
  assert.equal(table.get(a.nodeid), undefined);
  const again = table.remember('/a', 'file');
  assert.ok(again.nodeid > a.nodeid);
  assert.equal(table.get(1n)?.path, '/');
});

test('a path that changes type gets a new node', () => {
  const table = new InodeTable();
  const file = table.remember('/x', 'file');
  const directory = table.remember('/x', 'directory');
  assert.notEqual(directory.nodeid, file.nodeid);
  assert.equal(table.byPath('/x'), directory);
  assert.equal(table.get(file.nodeid), file, 'the old node stays until the kernel forgets it');
});

test('a restarted table restores nodeids, paths and cached versions from the journal', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'tide-inodes-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const journalPath = join(dir, 'nodes.journal');
  const first = new InodeTable({ journalPath });
  const a = first.remember('/a', 'directory');
  const b = first.remember('/a/b "quoted"\tname', 'file');
  const c = first.remember('/c', 'file');
  first.setCachedVersion(b, 'v1');
  first.forget(c.nodeid, 1);
  first.close();
  // A crash in the middle of an append leaves half a line.
  await appendFile(journalPath, '+\t99\t1\tfi');

  const second = new InodeTable({ journalPath, restore: true });
  assert.equal(second.get(a.nodeid)?.path, '/a');
  assert.equal(second.get(b.nodeid)?.path, '/a/b "quoted"\tname');
  assert.equal(second.get(b.nodeid)?.cachedVersion, 'v1');
  assert.equal(second.get(c.nodeid), undefined);
  const d = second.remember('/d', 'file');
  assert.ok(d.nodeid > c.nodeid, 'new nodeids continue after the highest one ever given');
  second.forget(a.nodeid, 1);
  assert.ok(second.get(a.nodeid), 'restored nodes stay: their lookup count is unknown');
  second.close();

  const third = new InodeTable({ journalPath, restore: true });
  assert.equal(third.get(d.nodeid)?.path, '/d', 'a record appended after a cut line survives');
  third.close();
});
