/** Pods on a test cluster's real nodes: run one to its end, read its logs, wait for a phase. */
import https from 'node:https';
import { builtin, type KubeClient, type KubeObject } from '../../src/kube/index.ts';
import { waitFor, type TestCluster } from './cluster.ts';

export interface PodStatus {
  phase?: string;
  podIP?: string;
  conditions?: { type: string; status: string }[];
  containerStatuses?: {
    name: string;
    ready: boolean;
    restartCount: number;
    state?: Record<string, { reason?: string; message?: string; exitCode?: number } | undefined>;
  }[];
}

export function podStatus(pod: KubeObject): PodStatus {
  return (pod['status'] as PodStatus | undefined) ?? {};
}

/** A one-line account of a pod's containers, for failure messages. */
export function describePod(pod: KubeObject): string {
  const status = podStatus(pod);
  const containers = (status.containerStatuses ?? []).map((c) => {
    const [state, detail] = Object.entries(c.state ?? {})[0] ?? ['unknown', undefined];
    return `${c.name}: ${state}${detail?.reason === undefined ? '' : ` ${detail.reason}`}${detail?.message === undefined ? '' : ` (${detail.message})`}`;
  });
  return `phase ${status.phase ?? 'unknown'}; ${containers.join('; ')}`;
}

/** GET of a plain-text API path (pod logs), with the cluster's admin certificate. */
export async function getText(cluster: TestCluster, path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const request = https.get(
      `${cluster.server}${path}`,
      { ca: cluster.caPem, cert: cluster.clientCertPem, key: cluster.clientKeyPem, timeout: 30_000 },
      (response) => {
        let body = '';
        response.setEncoding('utf8').on('data', (s: string) => (body += s));
        response.once('end', () => {
          if ((response.statusCode ?? 0) >= 300)
            reject(new Error(`GET ${path}: HTTP ${response.statusCode}: ${body}`));
          else resolve(body);
        });
        response.once('error', reject);
      },
    );
    request.once('timeout', () => request.destroy(new Error(`GET ${path} timed out`)));
    request.once('error', reject);
  });
}

export async function podLogs(
  cluster: TestCluster,
  namespace: string,
  name: string,
  container?: string,
): Promise<string> {
  const query = container === undefined ? '' : `?container=${encodeURIComponent(container)}`;
  return getText(cluster, `/api/v1/namespaces/${namespace}/pods/${name}/log${query}`);
}

/** Waits until `accept` returns true for the pod; the error says what the pod was doing. */
export async function waitForPod(
  client: KubeClient,
  namespace: string,
  name: string,
  what: string,
  accept: (pod: KubeObject) => boolean,
  timeoutMs = 120_000,
): Promise<KubeObject> {
  let last: KubeObject | undefined;
  try {
    return await waitFor(
      `pod ${namespace}/${name} ${what}`,
      async () => {
        last = await client.get(builtin.pods, name, { namespace });
        return accept(last) ? last : undefined;
      },
      { timeoutMs, intervalMs: 500 },
    );
  } catch (error) {
    throw new Error(
      `${(error as Error).message}; pod: ${last === undefined ? 'not found' : describePod(last)}`,
      {
        cause: error,
      },
    );
  }
}

/** Creates a pod and waits until it has Succeeded or Failed; returns its phase and logs. */
export async function runPodToEnd(
  cluster: TestCluster,
  pod: KubeObject,
  timeoutMs = 120_000,
): Promise<{ phase: string; logs: string; pod: KubeObject }> {
  const namespace = pod.metadata?.namespace ?? 'default';
  const name = pod.metadata?.name ?? '';
  await cluster.client.create(builtin.pods, pod);
  const ended = await waitForPod(
    cluster.client,
    namespace,
    name,
    'to end',
    (p) => ['Succeeded', 'Failed'].includes(podStatus(p).phase ?? ''),
    timeoutMs,
  );
  // The first application container's: a webhook may have added sidecars.
  const container = (pod['spec'] as { containers?: { name: string }[] } | undefined)?.containers?.[0]?.name;
  return {
    phase: podStatus(ended).phase ?? '',
    logs: await podLogs(cluster, namespace, name, container),
    pod: ended,
  };
}
