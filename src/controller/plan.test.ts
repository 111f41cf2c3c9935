import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { AnyRuntime, Dataset } from '../api/index.ts';
import { planFor } from './plan.ts';

const dataset = {
  apiVersion: 'data.fluid.io/v1alpha1',
  kind: 'Dataset',
  metadata: { name: 'demo', namespace: 'default' },
  spec: { mounts: [{ mountPoint: 'local:///data', name: 'data' }] },
} as unknown as Dataset;

function runtime(cleanPolicy?: string): AnyRuntime {
  return {
    apiVersion: 'data.fluid.io/v1alpha1',
    kind: 'AlluxioRuntime',
    metadata: { name: 'demo', namespace: 'default' },
    spec: cleanPolicy === undefined ? {} : { fuse: { cleanPolicy } },
  } as unknown as AnyRuntime;
}

test("the plan carries the runtime's fuse.cleanPolicy, Fluid's OnRuntimeDeleted when unset or empty", () => {
  assert.equal(planFor(dataset, runtime(), []).fuseCleanPolicy, 'OnRuntimeDeleted');
  assert.equal(planFor(dataset, runtime(''), []).fuseCleanPolicy, 'OnRuntimeDeleted');
  assert.equal(planFor(dataset, runtime('OnDemand'), []).fuseCleanPolicy, 'OnDemand');
  assert.equal(planFor(dataset, runtime('OnFuseChanged'), []).fuseCleanPolicy, 'OnFuseChanged');
});
