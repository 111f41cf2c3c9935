import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatBytes, parseQuantity } from './quantity.ts';

test('parses binary and decimal quantities', () => {
  assert.equal(parseQuantity('2Gi'), 2 * 2 ** 30);
  assert.equal(parseQuantity('2G'), 2e9);
  assert.equal(parseQuantity('1.5Mi'), 1.5 * 2 ** 20);
  assert.equal(parseQuantity('100'), 100);
  assert.equal(parseQuantity('2 gigabytes'), undefined);
  assert.equal(parseQuantity('-1Gi'), undefined);
});

test('formats sizes the way Fluid prints them', () => {
  assert.equal(formatBytes(0), '0.00B');
  assert.equal(formatBytes(545.32 * 2 ** 20), '545.32MiB');
  assert.equal(formatBytes(2 ** 30), '1.00GiB');
});
