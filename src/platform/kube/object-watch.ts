import { setTimeout as sleep } from 'node:timers/promises';
import { hasCode, toError, type Logger } from '../../lib/index.ts';
import type { KubeClient, KubeObject, ResourceType } from '../../kube/index.ts';

export interface FollowObjectOptions<T extends KubeObject> {
  client: KubeClient;
  type: ResourceType;
  namespace: string;
  name: string;
  logger: Logger;
  signal: AbortSignal;
  /** Called with the object as found at start (`first`), then with every later version of it. */
  onObject: (object: T, first: boolean) => void;
  /** Called once when the API refuses this client the object (403); following stops then. */
  onForbidden?: () => void;
  /** Milliseconds between attempts after a failure; default 1000. */
  retryMs?: number;
}

/**
 * Follows one object by name: get, then watch from its resourceVersion, and again after 410 Gone
 * or a broken stream. A missing object is not an error: its creation is reported as a later
 * version. Resolves once the signal aborts (or the API forbids the object).
 */
export async function followObject<T extends KubeObject>(options: FollowObjectOptions<T>): Promise<void> {
  const { client, type, namespace, name, logger, signal } = options;
  let first = true;
  // A function, so that the compiler does not take `aborted` for constant across the awaits.
  const stopped = (): boolean => signal.aborted;
  const take = (object: T): void => {
    const start = first;
    first = false;
    options.onObject(object, start);
  };
  while (!stopped()) {
    try {
      const current = await client.get<T>(type, name, { namespace, signal });
      take(current);
      for await (const event of client.watch<T>(type, {
        namespace,
        fieldSelector: `metadata.name=${name}`,
        resourceVersion: current.metadata?.resourceVersion,
        signal,
      })) {
        if (event.type === 'ADDED' || event.type === 'MODIFIED') take(event.object);
      }
    } catch (error) {
      if (stopped()) return;
      if (hasCode(error, 'ERR_KUBE_FORBIDDEN')) {
        options.onForbidden?.();
        return;
      }
      if (hasCode(error, 'ERR_KUBE_NOT_FOUND'))
        first = false; // Versions written later are all new.
      else if (!hasCode(error, 'ERR_KUBE_GONE'))
        logger.warn({ err: toError(error), kind: type.kind, name }, 'watching an object failed; retrying');
      await sleep(options.retryMs ?? 1000, undefined, { signal, ref: false }).catch(() => undefined);
    }
  }
}
