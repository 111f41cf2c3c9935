import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { Readable } from 'node:stream';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import {
  KubeClient,
  KubeConfigError,
  KubeGoneError,
  KubeInvalidError,
  builtin,
  loadKubeConfig,
  parseWatchStream,
  resourceType,
  statusToError,
} from './index.ts';

function chunks(...parts: string[]): AsyncIterable<string> {
  return Readable.from(parts, { objectMode: true }) as AsyncIterable<string>;
}

describe('parseWatchStream', () => {
  it('yields events split across chunk boundaries', async () => {
    const events = [];
    for await (const e of parseWatchStream(
      chunks(
        '{"type":"ADDED","object":{"metadata":{"name":"a"}}}\n{"type":"BOOK',
        'MARK","object":{"metadata":{"resourceVersion":"9"}}}\n',
      ),
    )) {
      events.push(e);
    }
    assert.deepEqual(
      events.map((e) => [e.type, e.object.metadata?.name ?? e.object.metadata?.resourceVersion]),
      [
        ['ADDED', 'a'],
        ['BOOKMARK', '9'],
      ],
    );
  });

  it('throws KubeGoneError for an ERROR event with code 410', async () => {
    const stream = chunks(
      '{"type":"ERROR","object":{"kind":"Status","status":"Failure","message":"too old resource version: 1 (42)","reason":"Expired","code":410}}\n',
    );
    await assert.rejects(
      async () => {
        for await (const e of parseWatchStream(stream)) assert.fail(`unexpected ${e.type}`);
      },
      (error: unknown) =>
        error instanceof KubeGoneError && error.code === 'ERR_KUBE_GONE' && error.message.includes('too old'),
    );
  });
});

describe('statusToError', () => {
  it('maps reason Invalid to ERR_KUBE_INVALID carrying the server message and causes', () => {
    const error = statusToError(
      {
        kind: 'Status',
        reason: 'Invalid',
        code: 422,
        message: 'bad',
        details: { causes: [{ field: 'spec.x' }] },
      },
      422,
    );
    assert.ok(error instanceof KubeInvalidError);
    assert.equal(error.message, 'bad');
    assert.deepEqual(error.causes, [{ field: 'spec.x' }]);
    assert.equal((error.cause as { reason: string }).reason, 'Invalid');
  });
});

describe('KubeClient.resourcePath', () => {
  const client = new KubeClient({ server: 'https://127.0.0.1:1', namespace: 'ns1' });
  it('addresses core, grouped, cluster-scoped and subresource paths', () => {
    assert.equal(client.resourcePath(builtin.pods, {}), '/api/v1/namespaces/ns1/pods');
    assert.equal(client.resourcePath(builtin.pods, { namespace: null }), '/api/v1/pods');
    assert.equal(client.resourcePath(builtin.nodes, { name: 'n' }), '/api/v1/nodes/n');
    const rt = resourceType('data.fluid.io/v1alpha1', 'TideRuntime', 'tideruntimes', { namespaced: true });
    assert.equal(
      client.resourcePath(rt, { namespace: 'x', name: 'r', subresource: 'scale' }),
      '/apis/data.fluid.io/v1alpha1/namespaces/x/tideruntimes/r/scale',
    );
  });
  client.close();
});

describe('loadKubeConfig', () => {
  it('reads YAML with relative file references and inline data', async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'tide-kubeconfig-'));
    t.after(() => rm(dir, { recursive: true, force: true }));
    await writeFile(join(dir, 'ca.crt'), 'CA PEM');
    await writeFile(
      join(dir, 'config'),
      [
        'apiVersion: v1',
        'kind: Config',
        'current-context: c',
        'clusters: [{name: k, cluster: {server: "https://127.0.0.1:6443/", certificate-authority: ca.crt}}]',
        `users: [{name: u, user: {client-certificate-data: ${Buffer.from('CERT').toString('base64')}, token: abc}}]`,
        'contexts: [{name: c, context: {cluster: k, user: u, namespace: team}}]',
      ].join('\n'),
    );
    const c = await loadKubeConfig(join(dir, 'config'));
    assert.equal(c.server, 'https://127.0.0.1:6443');
    assert.equal(c.caPem, 'CA PEM');
    assert.equal(c.clientCertPem, 'CERT');
    assert.equal(c.token, 'abc');
    assert.equal(c.namespace, 'team');
    await assert.rejects(loadKubeConfig(join(dir, 'config'), { context: 'missing' }), KubeConfigError);
  });
});
