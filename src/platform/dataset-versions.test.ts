import assert from 'node:assert/strict';
import { test } from 'node:test';
import { gzipSync } from 'node:zlib';
import { changedPaths, decodeVersions, encodeVersions, type VersionsFile } from './dataset-versions.ts';

const known = new Map([
  ['/CHANGES.md', 'etag-1'],
  ['/KEYS', 'etag-2'],
  ['/old.txt', 'etag-3'],
  ['/other/kept.txt', 'etag-4'],
]);

test('a load that listed / marks changed and vanished files, and new files of listed directories', () => {
  const file: VersionsFile = {
    targets: ['/'],
    entries: [
      ['CHANGES.md', 'etag-9'],
      ['KEYS', 'etag-2'],
      ['new.txt', 'etag-5'],
      ['other/kept.txt', 'etag-4'],
    ],
  };
  assert.deepEqual(changedPaths(file, known, (dir) => dir === '/').sort(), [
    '/CHANGES.md',
    '/new.txt',
    '/old.txt',
  ]);
});

test('versions survive the ConfigMap encoding; too many travel as targets alone, and everything under them counts as changed', () => {
  const file: VersionsFile = { targets: ['/'], entries: [['CHANGES.md', 'etag-9']] };
  assert.deepEqual(decodeVersions(encodeVersions(file)), file);

  const big: VersionsFile = {
    targets: ['/other'],
    entries: Array.from({ length: 2000 }, (_, i) => [`other/file-${i}-${'x'.repeat(40)}`, `etag-${i}`]),
  };
  const truncated = decodeVersions(encodeVersions(big, 1024));
  assert.deepEqual(truncated, { targets: ['/other'], entries: [], truncated: true });
  assert.deepEqual(changedPaths(truncated, known), ['/other/kept.txt']);

  assert.equal(decodeVersions('not gzip'), undefined);
  assert.equal(decodeVersions(gzipSync('{"targets":1}').toString('base64')), undefined);
});
