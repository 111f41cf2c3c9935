import { test } from 'node:test';
import assert from 'node:assert/strict';
import { hasCode } from '../lib/index.ts';
import { DEFAULT_FUSE_OPTIONS, metadataTtlSecondsOf, parseFuseArgs } from './options.ts';

test('parses the libfuse -o flags the seed manifests use', () => {
  const parsed = parseFuseArgs([
    '-okernel_cache',
    '-oro',
    '-oattr_timeout=60',
    '-oentry_timeout=60',
    '-onegative_timeout=60',
  ]);
  assert.equal(parsed.options.keepCache, 'always');
  assert.equal(parsed.options.readOnlyMount, true);
  assert.equal(parsed.options.attrTimeoutSeconds, 60);
  assert.equal(parsed.options.entryTimeoutSeconds, 60);
  assert.equal(parsed.options.negativeTimeoutSeconds, 60);
  assert.deepEqual(parsed.unknown, []);
});

test('the metadata TTL follows the kernel timeouts unless metadata_ttl is given', () => {
  assert.equal(metadataTtlSecondsOf(parseFuseArgs([]).options), 5);
  assert.equal(metadataTtlSecondsOf(parseFuseArgs(['-oattr_timeout=60,entry_timeout=30']).options), 60);
  assert.equal(metadataTtlSecondsOf(parseFuseArgs(['-oattr_timeout=60', '-ometadata_ttl=1']).options), 1);
});

test('answers xattr calls ENOSYS by default, each call only with -oxattr', () => {
  assert.equal(parseFuseArgs([]).options.noXattr, true);
  assert.equal(parseFuseArgs(['-ono_xattr']).options.noXattr, true);
  assert.equal(parseFuseArgs(['-oxattr']).options.noXattr, false);
});

test('parses Alluxio-style --fuse-opts with max_read', () => {
  const parsed = parseFuseArgs([
    '--fuse-opts=kernel_cache,ro,max_read=131072,attr_timeout=7200,entry_timeout=7200,nonempty',
  ]);
  assert.equal(parsed.options.maxReadBytes, 131072);
  assert.equal(parsed.options.attrTimeoutSeconds, 7200);
  assert.equal(parsed.options.keepCache, 'always');
  assert.deepEqual(parsed.ignored, ['nonempty']);
});

test('accepts -o with a separate comma list, allow_other and escaped commas', () => {
  const parsed = parseFuseArgs(['-o', 'allow_other,default_permissions', '-o', 'fsname=a\\,b', '-f']);
  assert.equal(parsed.options.allowOther, true);
  assert.equal(parsed.options.defaultPermissions, true);
  assert.equal(parsed.options.fsname, 'a,b');
  assert.deepEqual(parsed.ignored, ['-f']);
});

test('reports unknown options and arguments without failing', () => {
  const parsed = parseFuseArgs(['-ofrobnicate=3', '-ouse_ino', '/mnt/point', '--fuse-opts']);
  assert.deepEqual(parsed.unknown, ['/mnt/point', '--fuse-opts', 'frobnicate=3']);
  assert.deepEqual(parsed.ignored, ['use_ino']);
});

test('keeps the defaults when given nothing', () => {
  assert.deepEqual(parseFuseArgs([]).options, { ...DEFAULT_FUSE_OPTIONS });
});

test('rejects malformed values of known options with ERR_FUSE_BAD_CONFIG', () => {
  for (const bad of [
    '-oattr_timeout=soon',
    '-oattr_timeout=-1',
    '-omax_read=12',
    '-oentry_timeout',
    '-oumask=9',
    '-omax_background=0',
  ]) {
    assert.throws(
      () => parseFuseArgs([bad]),
      (error: unknown) => hasCode(error, 'ERR_FUSE_BAD_CONFIG'),
      bad,
    );
  }
});

test('fractional timeouts, umask and rw are honoured', () => {
  const parsed = parseFuseArgs(['-oattr_timeout=0.5,umask=027,rw,direct_io,uid=1000,gid=1000']);
  assert.equal(parsed.options.attrTimeoutSeconds, 0.5);
  assert.equal(parsed.options.umask, 0o027);
  assert.equal(parsed.options.readOnlyMount, false);
  assert.equal(parsed.options.directIo, true);
  assert.equal(parsed.options.uid, 1000);
});
