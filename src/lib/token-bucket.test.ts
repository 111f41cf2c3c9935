import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TokenBucket } from './token-bucket.ts';

test("a token bucket lets one second's worth through at once and paces the rest", async () => {
  const bucket = new TokenBucket(50);
  const started = Date.now();
  for (let i = 0; i < 50; i += 1) await bucket.take(1);
  assert.ok(Date.now() - started < 100, 'the burst waits for nothing');
  // 25 more at 50 a second: about half a second, taken concurrently in order.
  await Promise.all(Array.from({ length: 25 }, () => bucket.take(1)));
  const elapsed = Date.now() - started;
  assert.ok(elapsed >= 450 && elapsed < 1500, `${elapsed} ms`);
});

test('a token bucket stops waiting when its signal aborts, with the error the caller makes', async () => {
  const bucket = new TokenBucket(1);
  await bucket.take(1);
  const controller = new AbortController();
  const waiting = bucket.take(1, controller.signal, () => new RangeError('stopped'));
  controller.abort();
  await assert.rejects(waiting, RangeError);
});
