import { test } from 'node:test';
import assert from 'node:assert/strict';
import { inspect } from 'node:util';
import { silentLogger } from '../lib/index.ts';
import { mountIdOf, parseWorkerConfig, workerOptionsFromConfig } from './worker-config.ts';
import { CacheError } from './errors.ts';

const valid = {
  datasetId: 'default/demo',
  workerId: 'demo-worker-0',
  token: 'runtime-token',
  blockSize: '2Mi',
  tieredstore: { levels: [{ mediumtype: 'SSD', path: '/var/tmp/tide', quota: '1Gi' }] },
  mounts: [{ mountPoint: 'local:///data', secrets: { password: 'hunter2' } }],
};

test('turns a worker configuration into worker options with secrets kept secret', () => {
  const options = workerOptionsFromConfig(parseWorkerConfig(structuredClone(valid)), {
    logger: silentLogger(),
  });
  assert.equal(options.blockSizeBytes, 2 * 1024 * 1024);
  assert.equal(options.mounts[0]?.id, 'local:///data');
  assert.equal(options.tiers[0]?.dirs[0]?.capacityBytes, 2 ** 30);
  assert.equal(options.token?.reveal(), 'runtime-token');
  assert.equal(inspect(options).includes('runtime-token'), false);
});

test('refuses a configuration naming the fields at fault, without quoting values', () => {
  const bad = { ...structuredClone(valid), port: -1, extra: true, token: 7 };
  assert.throws(
    () => parseWorkerConfig(bad),
    (error: unknown) =>
      error instanceof CacheError &&
      error.code === 'ERR_CACHE_BAD_CONFIG' &&
      /\/port/.test(error.message) &&
      /\/token/.test(error.message),
  );
  assert.throws(
    () =>
      workerOptionsFromConfig(parseWorkerConfig({ ...structuredClone(valid), blockSize: 'big' }), {
        logger: silentLogger(),
      }),
    { code: 'ERR_CACHE_BAD_CONFIG' },
  );
});

test('mount ids drop user information so that credentials never reach block keys', () => {
  assert.equal(mountIdOf('https://user:pass@example.com/data/'), 'https://example.com/data/');
  assert.equal(mountIdOf('s3://bucket/prefix'), 's3://bucket/prefix');
  assert.equal(mountIdOf('local:///data'), 'local:///data');
});

test('direct I/O is left to the worker default unless the configuration turns it off', () => {
  const logger = silentLogger();
  assert.equal(
    workerOptionsFromConfig(parseWorkerConfig(structuredClone(valid)), { logger }).directIo,
    undefined,
  );
  const off = parseWorkerConfig({ ...structuredClone(valid), directIo: false });
  assert.equal(workerOptionsFromConfig(off, { logger }).directIo, false);
  assert.throws(() => parseWorkerConfig({ ...structuredClone(valid), directIo: 'no' }), {
    code: 'ERR_CACHE_BAD_CONFIG',
  });
});
