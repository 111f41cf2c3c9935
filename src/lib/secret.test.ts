import { test } from 'node:test';
import assert from 'node:assert/strict';
import { inspect } from 'node:util';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { SecretValue, scrubSecrets } from './secret.ts';

test('a secret prints as [REDACTED] through String, JSON, inspect and pino', () => {
  const secret = new SecretValue('s3cr3t-value');
  assert.equal(String(secret), '[REDACTED]');
  assert.equal(JSON.stringify({ secret }), '{"secret":"[REDACTED]"}');
  assert.equal(inspect({ secret }).includes('s3cr3t'), false);
  let logged = '';
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      logged += chunk.toString();
      done();
    },
  });
  pino(sink).info({ credentials: { secret } }, 'connecting');
  assert.equal(logged.includes('s3cr3t'), false);
  assert.equal(secret.reveal(), 's3cr3t-value');
});

test('scrubSecrets removes secret values from remote error text', () => {
  assert.equal(
    scrubSecrets('bad key abc123 for abc123', [new SecretValue('abc123')]),
    'bad key [REDACTED] for [REDACTED]',
  );
});
