import { test } from 'node:test';
import assert from 'node:assert/strict';
import { aggregateCacheStates } from './stats.ts';
import { emptyCounters, type WorkerStats } from './worker-stats.ts';

const MiB = 1024 * 1024;

function worker(id: string, overrides: Partial<WorkerStats>): WorkerStats {
  return {
    datasetId: 'default/demo',
    workerId: id,
    nodeName: 'n',
    blockSizeBytes: 4 * MiB,
    capacityBytes: 2048 * MiB,
    usedBytes: 0,
    cachedBytes: 0,
    tiers: [],
    counters: emptyCounters(),
    files: [],
    ...overrides,
  };
}

test('counts each block of the current file versions once, whatever the replicas', () => {
  const a = worker('a', {
    files: [
      {
        mount: 'm',
        path: 'x',
        version: 'v2',
        blocks: [
          [0, 4 * MiB],
          [1, 4 * MiB],
        ],
      },
      { mount: 'm', path: 'x', version: 'v1', blocks: [[0, 4 * MiB]] },
      { mount: 'm', path: 'gone', version: 'v1', blocks: [[0, MiB]] },
    ],
  });
  const b = worker('b', {
    files: [
      {
        mount: 'm',
        path: 'x',
        version: 'v2',
        blocks: [
          [1, 4 * MiB],
          [2, 2 * MiB],
        ],
      },
    ],
  });
  const current = new Map([['m\0x', 'v2']]);
  const { cacheStates, cachedBytes } = aggregateCacheStates({
    workers: [a, b],
    ufsTotalBytes: 20 * MiB,
    currentVersion: (mount, path) => current.get(`${mount}\0${path}`),
  });
  assert.equal(cachedBytes, 10 * MiB);
  assert.equal(cacheStates['cached'], '10.00MiB');
  assert.equal(cacheStates['cacheCapacity'], '4.00GiB');
  assert.equal(cacheStates['cachedPercentage'], '50.0%');
});

test('derives Fluid’s hit ratios from local, remote and origin bytes, over an interval when given one', () => {
  const a = worker('a', {
    counters: { ...emptyCounters(), servedLocalBytes: 600, servedRemoteBytes: 200, servedOriginBytes: 200 },
  });
  const b = worker('b', {
    counters: { ...emptyCounters(), servedLocalBytes: 0, servedRemoteBytes: 0, servedOriginBytes: 1000 },
  });
  const first = aggregateCacheStates({ workers: [a, b] });
  assert.deepEqual(
    [
      first.cacheStates['cacheHitRatio'],
      first.cacheStates['localHitRatio'],
      first.cacheStates['remoteHitRatio'],
    ],
    ['40.0%', '30.0%', '10.0%'],
  );
  assert.equal(first.cacheStates['cachedPercentage'], undefined, 'no percentage without a UFS total');
  const later = worker('a', {
    counters: { ...emptyCounters(), servedLocalBytes: 1600, servedRemoteBytes: 200, servedOriginBytes: 200 },
  });
  const second = aggregateCacheStates({ workers: [later, b], previous: first.counters });
  assert.equal(second.cacheStates['cacheHitRatio'], '100.0%');
  const idle = aggregateCacheStates({ workers: [later, b], previous: second.counters, ufsTotalBytes: 0 });
  assert.equal(idle.cacheStates['cacheHitRatio'], '0.0%');
  assert.equal(idle.cacheStates['cachedPercentage'], '0.0%');
});
