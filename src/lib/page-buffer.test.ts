import assert from 'node:assert/strict';
import test from 'node:test';
import { allocatePageStarted } from './page-buffer.ts';

test('a page-started buffer has its head before the page glibc starts its memory in', () => {
  const plain = allocatePageStarted(8192);
  assert.equal(plain.length, 8192);
  assert.equal(plain.byteOffset, 4080, '16 bytes of chunk header, then the rest of the first page');
  const withHead = allocatePageStarted(1024, 16);
  assert.equal(withHead.byteOffset, 4064, 'the 16-byte head ends where the page starts');
  assert.equal(withHead.buffer.byteLength, 4064 + 1024, 'its own memory, not a slab');
});

test('a head longer than the first page is refused', () => {
  assert.throws(() => allocatePageStarted(4096, 4081), RangeError);
  assert.throws(() => allocatePageStarted(4096, -1), RangeError);
});
