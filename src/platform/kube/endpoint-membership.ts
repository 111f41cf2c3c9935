import type { Membership, WorkerEndpoint } from '../../cache/index.ts';
import { hasCode, toError, type Logger } from '../../lib/index.ts';
import type { KubeClient, KubeObject } from '../../kube/index.ts';
import { extraTypes } from './names.ts';

/** The part of a `discovery.k8s.io/v1` EndpointSlice the membership reads. */
export interface EndpointSliceLike extends KubeObject {
  addressType?: string;
  endpoints?: {
    addresses?: string[];
    conditions?: { ready?: boolean; serving?: boolean; terminating?: boolean };
    hostname?: string;
    nodeName?: string;
    targetRef?: { kind?: string; name?: string };
  }[];
  ports?: { name?: string; port?: number }[];
}

/**
 * The cache workers an EndpointSlice set lists: ready endpoints only (as the Service's DNS), one
 * per pod, named `<pod>:<port>` as each worker names itself, sorted so that every client builds the
 * same list.
 */
export function workersFromSlices(slices: readonly EndpointSliceLike[], portName = 'http'): WorkerEndpoint[] {
  const workers = new Map<string, WorkerEndpoint>();
  for (const slice of slices) {
    const port =
      slice.ports?.find((candidate) => candidate.name === portName)?.port ?? slice.ports?.[0]?.port;
    if (port === undefined) continue;
    for (const endpoint of slice.endpoints ?? []) {
      // Per the EndpointSlice API, a nil `ready` means ready.
      if (endpoint.conditions?.ready === false) continue;
      const address = endpoint.addresses?.[0];
      const pod = endpoint.targetRef?.name ?? endpoint.hostname;
      if (address === undefined || pod === undefined) continue;
      const host = slice.addressType === 'IPv6' || address.includes(':') ? `[${address}]` : address;
      const id = `${pod}:${port}`;
      workers.set(id, { id, url: `http://${host}:${port}`, nodeName: endpoint.nodeName ?? '' });
    }
  }
  return [...workers.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}

export interface EndpointSliceMembershipOptions {
  client: KubeClient;
  namespace: string;
  /** The headless Service of the workers. */
  serviceName: string;
  logger: Logger;
  /** Ends the watch. */
  signal: AbortSignal;
}

/**
 * A Membership that follows the EndpointSlices of the workers' headless Service (label
 * `kubernetes.io/service-name`): list, then watch from the list's version with bookmarks, and list
 * again after 410 Gone. Kubernetes' EndpointSlice controller adds a worker when its pod turns Ready
 * and drops it when the pod stops, so clients follow scaling and restarts.
 */
export class EndpointSliceMembership implements Membership {
  readonly #options: EndpointSliceMembershipOptions;
  readonly #slices = new Map<string, EndpointSliceLike>();
  readonly #listeners = new Set<(workers: readonly WorkerEndpoint[]) => void>();
  #workers: readonly WorkerEndpoint[] = [];
  #done: Promise<void> = Promise.resolve();

  private constructor(options: EndpointSliceMembershipOptions) {
    this.#options = options;
  }

  /** Lists the current workers, then follows changes until the signal aborts. */
  static async start(options: EndpointSliceMembershipOptions): Promise<EndpointSliceMembership> {
    const membership = new EndpointSliceMembership(options);
    const resourceVersion = await membership.#list();
    membership.#done = membership.#follow(resourceVersion);
    return membership;
  }

  workers(): readonly WorkerEndpoint[] {
    return this.#workers;
  }

  subscribe(listener: (workers: readonly WorkerEndpoint[]) => void): () => void {
    this.#listeners.add(listener);
    return () => {
      this.#listeners.delete(listener);
    };
  }

  /** Resolves once the watch has ended after the signal aborted. */
  closed(): Promise<void> {
    return this.#done;
  }

  #selector(): string {
    return `kubernetes.io/service-name=${this.#options.serviceName}`;
  }

  async #list(): Promise<string> {
    const { client, namespace, signal } = this.#options;
    const list = await client.list<EndpointSliceLike>(extraTypes.endpointSlices, {
      namespace,
      labelSelector: this.#selector(),
      signal,
    });
    this.#slices.clear();
    for (const slice of list.items) this.#slices.set(slice.metadata?.name ?? '', slice);
    this.#publish();
    return list.metadata.resourceVersion ?? '';
  }

  async #follow(from: string): Promise<void> {
    const { client, namespace, signal, logger } = this.#options;
    let resourceVersion: string | undefined = from;
    const stopped = (): boolean => signal.aborted;
    while (!stopped()) {
      try {
        resourceVersion ??= await this.#list();
        for await (const event of client.watch<EndpointSliceLike>(extraTypes.endpointSlices, {
          namespace,
          labelSelector: this.#selector(),
          resourceVersion,
          signal,
        })) {
          resourceVersion = event.object.metadata?.resourceVersion ?? resourceVersion;
          if (event.type === 'BOOKMARK') continue;
          const name = event.object.metadata?.name ?? '';
          if (event.type === 'DELETED') this.#slices.delete(name);
          else this.#slices.set(name, event.object);
          this.#publish();
        }
      } catch (error) {
        if (stopped()) return;
        if (hasCode(error, 'ERR_KUBE_GONE')) resourceVersion = undefined;
        else logger.warn({ err: toError(error) }, 'watching the workers failed; retrying');
        await new Promise((resolve) => setTimeout(resolve, 1000).unref());
      }
    }
  }

  #publish(): void {
    const next = workersFromSlices([...this.#slices.values()]);
    if (JSON.stringify(next) === JSON.stringify(this.#workers)) return;
    this.#workers = Object.freeze(next.map((worker) => Object.freeze(worker)));
    this.#options.logger.info({ workers: next.map((worker) => worker.id) }, 'membership changed');
    for (const listener of this.#listeners) listener(this.#workers);
  }
}
