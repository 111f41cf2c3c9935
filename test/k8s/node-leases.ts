import { setTimeout as sleep } from 'node:timers/promises';
import { microTime } from '../../src/operator/index.ts';
import { builtin, type KubeClient } from '../../src/kube/index.ts';

/**
 * Renews a `kube-node-lease` Lease per node every few seconds, as kubelet does: kwok here runs
 * without node leases and heartbeats node status only every ten minutes, so after the
 * node-monitor grace period kube-controller-manager would briefly see every node NotReady and mark
 * every pod NotReady for good (kwok only readies Pending pods), which has nothing to do with Tide.
 */
export function keepNodeLeases(client: KubeClient, signal: AbortSignal): Promise<void> {
  const renew = async (): Promise<void> => {
    const nodes = await client.list(builtin.nodes, { signal });
    for (const node of nodes.items) {
      const name = node.metadata?.name ?? '';
      const spec = { holderIdentity: name, leaseDurationSeconds: 40, renewTime: microTime(new Date()) };
      try {
        const lease = await client.get(builtin.leases, name, { namespace: 'kube-node-lease', signal });
        await client.update(builtin.leases, { ...lease, spec }, { namespace: 'kube-node-lease', signal });
      } catch (error) {
        if ((error as { code?: string }).code !== 'ERR_KUBE_NOT_FOUND') throw error;
        await client.create(
          builtin.leases,
          { metadata: { name, namespace: 'kube-node-lease' }, spec },
          { namespace: 'kube-node-lease', signal },
        );
      }
    }
  };
  return (async () => {
    while (!signal.aborted) {
      await renew().catch(() => undefined);
      await sleep(5000, undefined, { signal }).catch(() => undefined);
    }
  })();
}
