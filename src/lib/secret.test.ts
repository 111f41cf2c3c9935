import { test } from 'node:test';
import assert from 'node:assert/strict';
import { inspect } from 'node:util';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { redactUrlCredentials, redactUrlCredentialsDeep, SecretValue, scrubSecrets } from './secret.ts';
import { createLogger } from './logger.ts';

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

test('user info of URLs is redacted in texts, JSON-like values and log lines', () => {
  assert.equal(
    redactUrlCredentials('GET https://reader:pa%40ss@example.com/a@b failed; see http://host/x'),
    'GET https://[REDACTED]@example.com/a@b failed; see http://host/x',
  );
  assert.deepEqual(redactUrlCredentialsDeep({ spec: { mounts: [{ mountPoint: 'http://u:p@h/' }] }, n: 1 }), {
    spec: { mounts: [{ mountPoint: 'http://[REDACTED]@h/' }] },
    n: 1,
  });
  const lines: string[] = [];
  const logger = createLogger({ destination: { write: (line: string) => lines.push(line) } });
  logger.info({ mountPoint: 'https://user:hunter2@origin/' }, 'mounting https://user:hunter2@origin/');
  assert.equal(lines.length, 1);
  assert.ok(!lines[0]?.includes('hunter2'), lines[0]);
});
