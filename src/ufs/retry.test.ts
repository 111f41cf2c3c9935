import { test } from 'node:test';
import assert from 'node:assert/strict';
import { silentLogger } from '../lib/index.ts';
import { UfsError } from './errors.ts';
import { transientError } from './failures.ts';
import { backoffMs, retryPolicyFrom, withRetry, DEFAULT_RETRY_POLICY, type RetryPolicy } from './retry.ts';

const policy: RetryPolicy = { maxAttempts: 4, baseDelayMs: 5, maxDelayMs: 20, deadlineMs: 2000 };
const classify = (error: unknown) =>
  error instanceof UfsError
    ? { error, retryable: error.code === 'ERR_UFS_REMOTE' }
    : { error: new UfsError('ERR_UFS_REMOTE', String(error)), retryable: false };

test('backoff doubles per attempt within [cap/2, cap] and stops at maxDelayMs', () => {
  for (let attempt = 1; attempt <= 6; attempt++) {
    const cap = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** (attempt - 1));
    for (let sample = 0; sample < 50; sample++) {
      const delay = backoffMs(policy, attempt);
      assert.ok(
        delay >= cap / 2 - 1 && delay <= cap + 1,
        `attempt ${attempt}: ${delay} outside [${cap / 2}, ${cap}]`,
      );
    }
  }
});

test('retries transient failures up to maxAttempts and fails at once on others', async () => {
  let calls = 0;
  await assert.rejects(
    withRetry({
      policy,
      what: 'x',
      logger: silentLogger(),
      classify,
      attempt: () => {
        calls++;
        return Promise.reject(transientError('ERR_UFS_REMOTE', 'busy'));
      },
    }),
    { code: 'ERR_UFS_REMOTE' },
  );
  assert.equal(calls, 4);
  calls = 0;
  await assert.rejects(
    withRetry({
      policy,
      what: 'x',
      logger: silentLogger(),
      classify,
      attempt: () => {
        calls++;
        return Promise.reject(new UfsError('ERR_UFS_NOT_FOUND', 'gone'));
      },
    }),
    { code: 'ERR_UFS_NOT_FOUND' },
  );
  assert.equal(calls, 1);
  calls = 0;
  const value = await withRetry({
    policy,
    what: 'x',
    logger: silentLogger(),
    classify,
    attempt: () =>
      ++calls < 3 ? Promise.reject(transientError('ERR_UFS_REMOTE', 'busy')) : Promise.resolve(42),
  });
  assert.equal(value, 42);
});

test('the deadline ends a hanging attempt with ERR_UFS_TIMEOUT and an abort with ERR_UFS_ABORTED', async () => {
  const hang = (signal: AbortSignal) =>
    new Promise<never>((_resolve, reject) => {
      signal.addEventListener('abort', () => {
        reject(new Error('stopped'));
      });
    });
  const started = Date.now();
  await assert.rejects(
    withRetry({
      policy: { ...policy, deadlineMs: 100 },
      what: 'x',
      logger: silentLogger(),
      classify,
      attempt: hang,
    }),
    { code: 'ERR_UFS_TIMEOUT', message: /within 100 ms/ },
  );
  assert.ok(Date.now() - started < 1000);
  const controller = new AbortController();
  setTimeout(() => {
    controller.abort();
  }, 20);
  await assert.rejects(
    withRetry({
      policy,
      what: 'x',
      signal: controller.signal,
      logger: silentLogger(),
      classify,
      attempt: hang,
    }),
    { code: 'ERR_UFS_ABORTED' },
  );
});

test('mount options override the retry policy and must be positive integers', () => {
  assert.deepEqual(
    retryPolicyFrom({ 'tide.ufs.maxAttempts': '2', 'tide.ufs.deadlineMs': '500' }, DEFAULT_RETRY_POLICY),
    {
      ...DEFAULT_RETRY_POLICY,
      maxAttempts: 2,
      deadlineMs: 500,
    },
  );
  assert.throws(() => retryPolicyFrom({ 'tide.ufs.maxAttempts': 'many' }, DEFAULT_RETRY_POLICY), {
    code: 'ERR_UFS_BAD_CONFIG',
  });
  assert.throws(() => retryPolicyFrom({ 'tide.ufs.deadlineMs': '0' }, DEFAULT_RETRY_POLICY), {
    code: 'ERR_UFS_BAD_CONFIG',
  });
});
