import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseIndexLinks } from './html-index.ts';

const fixtures = join(import.meta.dirname, '..', '..', 'test', 'integration', 'ufs', 'fixtures');

async function linksOf(fixture: string, pageUrl: string) {
  const html = await readFile(join(fixtures, fixture), 'utf8');
  return parseIndexLinks(html, new URL(pageUrl)).sort((a, b) => a.name.localeCompare(b.name));
}

test('an Apache fancy table index gives its children without parent and sort links', async () => {
  assert.deepEqual(
    await linksOf('apache-fancy-table.html.txt', 'https://mirrors.example.org/apache/zookeeper/'),
    [
      { name: 'current', directory: true },
      { name: 'KEYS', directory: false },
      { name: 'README.txt', directory: false },
      { name: 'release notes ü+.html', directory: false },
      { name: 'stable', directory: true },
      { name: 'zookeeper-3.8.4', directory: true },
      { name: 'zookeeper-3.9.2', directory: true },
    ],
  );
});

test('an Apache fancy <pre> index and a plain <ul> index parse alike', async () => {
  assert.deepEqual(
    (await linksOf('apache-fancy-pre.html.txt', 'https://archive.example.org/dist/hbase/2.5.8/')).map(
      (l) => l.name,
    ),
    [
      'api_compare',
      'CHANGES.md',
      'hbase-2.5.8-bin.tar.gz',
      'hbase-2.5.8-bin.tar.gz.asc',
      'hbase-2.5.8-bin.tar.gz.sha512',
      'RELEASENOTES.md',
    ],
  );
  assert.deepEqual(await linksOf('apache-plain-list.html.txt', 'http://files.local/pub/data/'), [
    { name: 'a&b.txt', directory: false },
    { name: 'images', directory: true },
    { name: 'train-00000-of-00002.parquet', directory: false },
    { name: 'train-00001-of-00002.parquet', directory: false },
  ]);
});

test('an nginx autoindex page gives full names from hrefs, decoded, not the truncated text', async () => {
  assert.deepEqual(await linksOf('nginx-autoindex.html.txt', 'http://127.0.0.1:8080/models/'), [
    { name: 'bert-base', directory: true },
    { name: 'config copy.json', directory: false },
    { name: 'very-long-file-name-that-nginx-truncates-in-the-text-..>', directory: false },
    { name: '模型.bin', directory: false },
  ]);
});

test('a plain page of links keeps same-origin children and drops off-site, query, deeper, non-anchor and odd links', async () => {
  assert.deepEqual(await linksOf('plain-links.html.txt', 'http://files.local:8080/pub/data/'), [
    { name: 'same-origin-absolute.txt', directory: false },
    { name: 'SHA256SUMS', directory: false },
    { name: 'shard-0.tar', directory: false },
    { name: 'shard-1.tar', directory: false },
  ]);
});

test('a page URL without a trailing slash is read as the directory it names', () => {
  const links = parseIndexLinks('<a href="/x/y/z">z</a><a href="/x/y">self</a>', new URL('http://h/x/y'));
  assert.deepEqual(links, [{ name: 'z', directory: false }]);
});
