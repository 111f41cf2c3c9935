import assert from 'node:assert/strict';
import { test } from 'node:test';
import { staleCrdFiles } from '../../scripts/gen-crds.ts';

test('the CRDs of charts/tide/crds are the ones the API schemas generate (node scripts/gen-crds.ts)', async () => {
  assert.deepEqual(await staleCrdFiles(), [], 'out of date: run node scripts/gen-crds.ts');
});
