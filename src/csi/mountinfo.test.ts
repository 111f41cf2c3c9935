import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isReadOnly, mountsAt, parseMountInfo, topMountAt } from './mountinfo.ts';
import { bindMatches } from './binds.ts';
import type { VolumeAttributes } from './volume-context.ts';

const TEXT = [
  '27 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw',
  '90 27 0:52 / /runtime-mnt/tide/default/demo/tide-fuse rw,nosuid,nodev,relatime shared:60 - fuse.tide tide rw,user_id=0,group_id=0,allow_other',
  '91 27 0:52 / /var/lib/kubelet/pods/u1/volumes/kubernetes.io~csi/default-demo/mount ro,nosuid,nodev,relatime shared:60 - fuse.tide tide rw',
  '92 27 0:52 /sub /var/lib/kubelet/pods/u2/volumes/kubernetes.io~csi/default-demo/mount ro,relatime shared:60 - fuse.tide tide rw',
  '93 27 0:61 / /runtime-mnt/tide/default/demo/tide-fuse rw,relatime shared:70 master:3 - fuse.tide tide rw',
  '94 27 254:0 /a\\040dir /mnt/with\\040space rw - ext4 /dev/vda rw',
  'garbage line',
  '',
].join('\n');

const attributes = (subPath = ''): VolumeAttributes => ({
  fluidPath: '/runtime-mnt/tide/default/demo/tide-fuse',
  subPath,
  mountType: 'fuse.tide',
  cleanPolicy: 'OnRuntimeDeleted',
});

test('parses mountinfo lines with optional fields and octal escapes, skipping malformed ones', () => {
  const entries = parseMountInfo(TEXT);
  assert.equal(entries.length, 6);
  const spaced = entries.find((entry) => entry.mountId === 94) ?? assert.fail('no mount 94');
  assert.equal(spaced.mountPoint, '/mnt/with space');
  assert.equal(spaced.root, '/a dir');
  const top = entries.find((entry) => entry.mountId === 93) ?? assert.fail('no mount 93');
  assert.deepEqual(top.propagation, ['shared:70', 'master:3']);
  assert.equal(top.fsType, 'fuse.tide');
  assert.equal(top.device, '0:61');
});

test('the top of a stack is the last mount listed at the path', () => {
  const entries = parseMountInfo(TEXT);
  assert.equal(mountsAt(entries, '/runtime-mnt/tide/default/demo/tide-fuse').length, 2);
  assert.equal(topMountAt(entries, '/runtime-mnt/tide/default/demo/tide-fuse')?.mountId, 93);
  assert.equal(topMountAt(entries, '/nowhere'), undefined);
  assert.equal(isReadOnly(entries[2] ?? assert.fail()), true);
  assert.equal(isReadOnly(entries[1] ?? assert.fail()), false);
});

test('a bind matches the FUSE mount only with its device and the sub path as root', () => {
  const entries = parseMountInfo(TEXT);
  const byId = (id: number) => entries.find((entry) => entry.mountId === id) ?? assert.fail(`no mount ${id}`);
  // Binds 91 and 92 were made from the old connection (0:52); the FUSE mount now on top is 0:61.
  assert.equal(bindMatches(byId(91), byId(90), attributes()), true);
  assert.equal(bindMatches(byId(91), byId(93), attributes()), false);
  assert.equal(bindMatches(byId(92), byId(90), attributes('sub')), true);
  assert.equal(bindMatches(byId(92), byId(90), attributes()), false);
});
