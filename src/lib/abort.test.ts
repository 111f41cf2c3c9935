import { test } from 'node:test';
import assert from 'node:assert/strict';
import { getEventListeners } from 'node:events';
import { raceAbort, throwIfAborted } from './abort.ts';

test('raceAbort gives the promise when it settles first, and leaves no listener behind', async () => {
  const controller = new AbortController();
  assert.equal(await raceAbort(Promise.resolve(7), controller.signal), 7);
  await assert.rejects(raceAbort(Promise.reject(new Error('boom')), controller.signal), /boom/);
  assert.equal(getEventListeners(controller.signal, 'abort').length, 0);
});

test('raceAbort rejects as soon as the signal aborts, with the reason onAbort gives', async () => {
  const controller = new AbortController();
  const never = new Promise<number>(() => undefined);
  const plain = raceAbort(never, controller.signal);
  const custom = raceAbort(never, controller.signal, () => new Error('the read was cancelled'));
  controller.abort();
  await assert.rejects(plain, { name: 'AbortError' });
  await assert.rejects(custom, /the read was cancelled/);
  await assert.rejects(raceAbort(never, controller.signal), { name: 'AbortError' });
  assert.equal(await raceAbort(Promise.resolve('no signal'), undefined), 'no signal');
});

test('throwIfAborted throws what the factory makes of an aborted signal, else the reason as an Error', () => {
  const controller = new AbortController();
  throwIfAborted(controller.signal);
  throwIfAborted(undefined);
  controller.abort('stopped by the caller');
  assert.throws(
    () => {
      throwIfAborted(controller.signal, (signal) => new Error(`aborted: ${String(signal.reason)}`));
    },
    { message: 'aborted: stopped by the caller' },
  );
  assert.throws(
    () => {
      throwIfAborted(controller.signal);
    },
    (error: unknown) => error instanceof Error && error.message === 'stopped by the caller',
  );
  const withError = new AbortController();
  const reason = new Error('the reason itself');
  withError.abort(reason);
  assert.throws(
    () => {
      throwIfAborted(withError.signal);
    },
    (error: unknown) => error === reason,
  );
});
