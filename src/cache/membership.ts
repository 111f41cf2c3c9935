/** A cache worker as clients see it. */
export interface WorkerEndpoint {
  /** Stable across restarts (pod name); rendezvous hashing places blocks by it. */
  id: string;
  /** `http://host:port` of the worker. */
  url: string;
  /** Node (host) it runs on: clients on the same node read its block files directly. */
  nodeName: string;
}

/**
 * The set of workers serving a dataset. Implementations: `StaticMembership` (a list pushed by the
 * platform, e.g. the embedded daemon as it starts and stops workers) and, in Kubernetes, one fed by
 * the runtime's EndpointSlices. There is no consensus: clients agree because they hash alike over
 * the same list, and a client that sees a stale list only loses some hits, never correctness.
 */
export interface Membership {
  workers(): readonly WorkerEndpoint[];
  /** Calls `listener` with the new list after every change; returns the unsubscribe function. */
  subscribe(listener: (workers: readonly WorkerEndpoint[]) => void): () => void;
}

/** A membership whose list is set by its owner. */
export class StaticMembership implements Membership {
  #workers: readonly WorkerEndpoint[];
  readonly #listeners = new Set<(workers: readonly WorkerEndpoint[]) => void>();

  constructor(workers: readonly WorkerEndpoint[] = []) {
    this.#workers = checked(workers);
  }

  workers(): readonly WorkerEndpoint[] {
    return this.#workers;
  }

  /** Replaces the list and tells the subscribers. */
  update(workers: readonly WorkerEndpoint[]): void {
    this.#workers = checked(workers);
    for (const listener of this.#listeners) listener(this.#workers);
  }

  subscribe(listener: (workers: readonly WorkerEndpoint[]) => void): () => void {
    this.#listeners.add(listener);
    return () => {
      this.#listeners.delete(listener);
    };
  }
}

function checked(workers: readonly WorkerEndpoint[]): readonly WorkerEndpoint[] {
  const ids = new Set<string>();
  for (const worker of workers) {
    if (ids.has(worker.id)) throw new TypeError(`Cannot list the worker id "${worker.id}" twice`);
    ids.add(worker.id);
  }
  return Object.freeze(workers.map((worker) => Object.freeze({ ...worker })));
}
