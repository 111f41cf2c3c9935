import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseIndexLinks } from './html-index.ts';
import { parseAutoindexJson, parseAutoindexXml } from './autoindex-data.ts';

const fixtures = join(import.meta.dirname, '..', '..', 'test', 'integration', 'ufs', 'fixtures');

async function linksOf(fixture: string, pageUrl: string) {
  const html = await readFile(join(fixtures, fixture), 'utf8');
  return parseIndexLinks(html, new URL(pageUrl))
    .sort((a, b) => a.name.localeCompare(b.name))
    .map(({ name, directory }) => ({ name, directory }));
}

async function detailsOf(fixture: string, pageUrl: string) {
  const html = await readFile(join(fixtures, fixture), 'utf8');
  return Object.fromEntries(
    parseIndexLinks(html, new URL(pageUrl)).map((link) => [
      link.name,
      `${link.sizeBytes ?? '?'} ${link.mtimeMs === undefined ? '?' : new Date(link.mtimeMs).toISOString()}`,
    ]),
  );
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

test('an nginx page gives exact sizes and minute times; directories have no size', async () => {
  assert.deepEqual(await detailsOf('nginx-autoindex.html.txt', 'http://127.0.0.1:8080/models/'), {
    'bert-base': '? 2024-03-06T09:13:00.000Z',
    'very-long-file-name-that-nginx-truncates-in-the-text-..>': '12345 2024-03-06T09:13:00.000Z',
    'config copy.json': '612 2024-03-06T09:13:00.000Z',
    '模型.bin': '44040192 2024-03-06T09:13:00.000Z',
  });
});

test('Apache pages give exact sizes only where they print bytes, not rounded ones like 1.2K', async () => {
  assert.deepEqual(
    await detailsOf('apache-fancy-pre.html.txt', 'https://archive.example.org/dist/hbase/2.5.8/'),
    {
      'CHANGES.md': '? 2024-03-14T21:40:00.000Z',
      'RELEASENOTES.md': '? 2024-03-14T21:40:00.000Z',
      'hbase-2.5.8-bin.tar.gz': '? 2024-03-14T21:40:00.000Z',
      'hbase-2.5.8-bin.tar.gz.asc': '833 2024-03-14T21:40:00.000Z',
      'hbase-2.5.8-bin.tar.gz.sha512': '227 2024-03-14T21:40:00.000Z',
      api_compare: '? 2024-03-14T21:40:00.000Z',
    },
  );
  const table = await detailsOf(
    'apache-fancy-table.html.txt',
    'https://mirrors.example.org/apache/zookeeper/',
  );
  assert.equal(table.KEYS, '? 2023-10-09T12:03:00.000Z');
  assert.equal(table['README.txt'], '? 2019-05-20T15:42:00.000Z');
  const plain = await detailsOf('apache-plain-list.html.txt', 'http://files.local/pub/data/');
  assert.equal(plain['a&b.txt'], '? ?');
});

test('nginx json and xml autoindex pages give raw names, exact sizes and second times', () => {
  const json = parseAutoindexJson(
    '[{ "name":"sub dir", "type":"directory", "mtime":"Sat, 21 Nov 2026 13:46:43 GMT" },' +
      '{ "name":"a&b \\"q\\".txt", "type":"file", "mtime":"Sat, 21 Nov 2026 13:46:43 GMT", "size":1234 },' +
      '{ "name":"..", "type":"directory", "mtime":"Sat, 21 Nov 2026 13:46:43 GMT" }]',
  );
  const mtimeMs = Date.parse('2026-11-21T13:46:43Z');
  assert.deepEqual(json, [
    { name: 'sub dir', directory: true, mtimeMs },
    { name: 'a&b "q".txt', directory: false, mtimeMs, sizeBytes: 1234 },
  ]);
  const xml = parseAutoindexXml(
    '<?xml version="1.0"?>\n<list>\n<directory mtime="2026-11-21T13:46:43Z">sub dir</directory>\n' +
      '<file mtime="2026-11-21T13:46:43Z" size="1234">a&amp;b &quot;q&quot;.txt</file>\n</list>',
  );
  assert.deepEqual(xml, json);
  assert.equal(parseAutoindexJson('{"not":"a list"}'), undefined);
  assert.equal(parseAutoindexXml('<html></html>'), undefined);
});

test('upper-case anchors of old servers give their row details too', () => {
  const [link] = parseIndexLinks(
    '<PRE><A HREF="old.txt">old.txt</A>   06-Mar-2024 09:13   42\n</PRE>',
    new URL('http://h/d/'),
  );
  assert.deepEqual(link, {
    name: 'old.txt',
    directory: false,
    sizeBytes: 42,
    mtimeMs: Date.parse('2024-03-06T09:13:00Z'),
  });
});
