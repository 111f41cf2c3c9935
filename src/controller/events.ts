import { randomUUID } from 'node:crypto';
import type { ResourceStore, StoredObject } from '../store/index.ts';

export type EventType = 'Normal' | 'Warning';

/** Records Kubernetes-style events (Fluid's reasons) about an object; `tide describe` shows them. */
export interface EventRecorder {
  record(object: StoredObject, type: EventType, reason: string, message: string): Promise<void>;
}

/**
 * Events as `Event` objects in the resource store, owned by the object they are about (so they go
 * with it). A repeat of the last event of an object only bumps its count.
 */
export class StoreEventRecorder implements EventRecorder {
  readonly #store: ResourceStore;
  readonly #now: () => Date;
  readonly #last = new Map<string, { name: string; reason: string; message: string }>();

  constructor(store: ResourceStore, now: () => Date = () => new Date()) {
    this.#store = store;
    this.#now = now;
  }

  async record(object: StoredObject, type: EventType, reason: string, message: string): Promise<void> {
    const subject = `${object.kind}/${object.metadata.namespace}/${object.metadata.name}`;
    const timestamp = this.#now().toISOString();
    const last = this.#last.get(subject);
    if (last !== undefined && last.reason === reason && last.message === message) {
      const existing = await this.#store.get({
        kind: 'Event',
        namespace: object.metadata.namespace,
        name: last.name,
      });
      if (existing !== undefined) {
        await this.#store.update({
          ...existing,
          count: Number(existing['count'] ?? 1) + 1,
          lastTimestamp: timestamp,
        });
        return;
      }
    }
    const name = `${object.metadata.name}.${randomUUID().slice(0, 8)}`;
    const uid = object.metadata.uid;
    await this.#store.create({
      apiVersion: 'v1',
      kind: 'Event',
      metadata: {
        name,
        namespace: object.metadata.namespace,
        ...(uid === undefined
          ? {}
          : {
              ownerReferences: [
                { apiVersion: object.apiVersion, kind: object.kind, name: object.metadata.name, uid },
              ],
            }),
      },
      involvedObject: { kind: object.kind, name: object.metadata.name, namespace: object.metadata.namespace },
      type,
      reason,
      message,
      count: 1,
      firstTimestamp: timestamp,
      lastTimestamp: timestamp,
    });
    this.#last.set(subject, { name, reason, message });
  }
}
