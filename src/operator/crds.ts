import { setTimeout as sleep } from 'node:timers/promises';
import { allCrds, isTideCrd } from '../api/index.ts';
import { hasCode, type Logger } from '../lib/index.ts';
import { builtin, type KubeClient } from '../kube/index.ts';
import { OperatorError } from './errors.ts';

/**
 * Installs or upgrades Tide's CustomResourceDefinitions (generated from the API schemas) with
 * server-side apply, field manager `tide`, and waits until each is Established. The CRD of a kind
 * Tide serves for another project (the CronHPA's) is created only where absent: a cluster that
 * has kubernetes-cronhpa-controller's keeps it as it is.
 * @throws {OperatorError} ERR_CRD_NOT_ESTABLISHED when one is not served within `timeoutMs`
 */
export async function installCrds(
  client: KubeClient,
  options: { logger: Logger; signal: AbortSignal; timeoutMs?: number },
): Promise<string[]> {
  const names: string[] = [];
  for (const crd of allCrds()) {
    if (isTideCrd(crd)) {
      await client.apply(builtin.customResourceDefinitions, crd, { force: true, signal: options.signal });
    } else {
      try {
        await client.create(builtin.customResourceDefinitions, crd, { signal: options.signal });
      } catch (error) {
        if (!hasCode(error, 'ERR_KUBE_ALREADY_EXISTS')) throw error;
      }
    }
    names.push((crd['metadata'] as { name: string }).name);
  }
  const deadline = Date.now() + (options.timeoutMs ?? 60_000);
  for (const name of names) {
    for (;;) {
      const crd = await client.get(builtin.customResourceDefinitions, name, { signal: options.signal });
      const conditions = (crd['status'] as { conditions?: { type: string; status: string }[] } | undefined)
        ?.conditions;
      if (
        (conditions ?? []).some(
          (condition) => condition.type === 'Established' && condition.status === 'True',
        )
      )
        break;
      if (Date.now() > deadline) {
        throw new OperatorError(
          'ERR_CRD_NOT_ESTABLISHED',
          `CustomResourceDefinition ${name} was not Established in time`,
        );
      }
      await sleep(200, undefined, { signal: options.signal });
    }
  }
  options.logger.info({ crds: names }, 'CustomResourceDefinitions installed');
  return names;
}
