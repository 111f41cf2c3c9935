import { test } from 'node:test';
import assert from 'node:assert/strict';
import { hasCode, TideError } from './errors.ts';

test('hasCode matches the code of a TideError and of a Node system error, against any of the codes given', () => {
  const tide = new TideError('ERR_TEST_GONE', 'gone');
  assert.equal(hasCode(tide, 'ERR_TEST_GONE'), true);
  assert.equal(hasCode(tide, 'ERR_TEST_OTHER'), false);
  assert.equal(hasCode(tide, 'ERR_TEST_OTHER', 'ERR_TEST_GONE'), true);
  const reset = Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' });
  assert.equal(hasCode(reset, 'ECONNRESET', 'EPIPE'), true);
  assert.equal(hasCode(reset, 'EPIPE'), false);
});

test('hasCode is false for what is not an Error, and for a code that is not a string', () => {
  assert.equal(hasCode({ code: 'ECONNRESET' }, 'ECONNRESET'), false);
  assert.equal(hasCode('ECONNRESET', 'ECONNRESET'), false);
  assert.equal(hasCode(undefined, 'ECONNRESET'), false);
  assert.equal(hasCode(Object.assign(new Error('numeric'), { code: 5 }), '5'), false);
});
