import { test } from 'node:test';
import assert from 'node:assert/strict';
import { allCrds } from './crd.ts';

type Node = Record<string, unknown>;

/** Walks a schema and reports what Kubernetes' structural-schema rules forbid. */
function violations(node: Node, path: string, out: string[]): void {
  for (const forbidden of ['const', '$schema', '$id', 'patternProperties']) {
    if (forbidden in node) out.push(`${path}: has ${forbidden}`);
  }
  if ('properties' in node && 'additionalProperties' in node)
    out.push(`${path}: properties beside additionalProperties`);
  const typed =
    'type' in node ||
    node['x-kubernetes-int-or-string'] === true ||
    node['x-kubernetes-preserve-unknown-fields'] === true;
  if (!typed) out.push(`${path}: has no type`);
  for (const [key, child] of Object.entries((node['properties'] ?? {}) as Record<string, Node>)) {
    violations(child, `${path}.${key}`, out);
  }
  if (typeof node['items'] === 'object') violations(node['items'] as Node, `${path}[]`, out);
  if (typeof node['additionalProperties'] === 'object')
    violations(node['additionalProperties'] as Node, `${path}{}`, out);
}

test('generated CRDs are structural schemas', () => {
  const crds = allCrds();
  assert.equal(crds.length, 7);
  for (const crd of crds) {
    const version = (crd['spec'] as { versions: Node[] }).versions[0] as Node;
    const schema = (version['schema'] as { openAPIV3Schema: Node }).openAPIV3Schema;
    const problems: string[] = [];
    violations(schema, (crd['metadata'] as { name: string }).name, problems);
    assert.deepEqual(problems, []);
  }
});

test('runtimes have a scale subresource and datasets print Fluid columns', () => {
  const byName = new Map(allCrds().map((crd) => [(crd['metadata'] as { name: string }).name, crd]));
  const runtime = byName.get('tideruntimes.data.fluid.io') as { spec: { versions: Node[] } };
  assert.deepEqual((runtime.spec.versions[0]?.['subresources'] as Node)['scale'], {
    specReplicasPath: '.spec.replicas',
    statusReplicasPath: '.status.currentWorkerNumberScheduled',
    labelSelectorPath: '.status.selector',
  });
  const dataset = byName.get('datasets.data.fluid.io') as { spec: { versions: Node[] } };
  const columns = (dataset.spec.versions[0]?.['additionalPrinterColumns'] as { name: string }[]).map(
    (c) => c.name,
  );
  assert.deepEqual(columns.slice(0, 5), [
    'Ufs Total Size',
    'Cached',
    'Cache Capacity',
    'Cached Percentage',
    'Phase',
  ]);
});
