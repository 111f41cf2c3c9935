import { hostname } from 'node:os';
import type { EventRecorder, EventType } from '../controller/index.ts';
import { hasCode, toError, type Logger } from '../lib/index.ts';
import { builtin, type KubeClient } from '../kube/index.ts';
import type { StoredObject } from '../store/index.ts';

export interface KubeEventRecorderOptions {
  client: KubeClient;
  logger: Logger;
  /** `reportingInstance` of the events: the replica's identity. */
  instance: string;
  /** `source.component` and `reportingComponent`; default `tide-controller`. */
  component?: string;
  now?: () => Date;
}

interface Recent {
  name: string;
  namespace: string;
  count: number;
}

/**
 * Events through the core/v1 Event API, as `kubectl describe` shows them: `involvedObject` with the
 * object's uid, Fluid's reasons (from the reconcilers), `source.component` and
 * `reportingComponent`/`reportingInstance` naming the replica. A repeat of an event (same object,
 * type, reason and message) bumps `count` and `lastTimestamp` of the existing Event, as client-go's
 * EventCorrelator does. Events are best effort: a failure is logged, never thrown into a reconcile.
 */
export class KubeEventRecorder implements EventRecorder {
  readonly #options: KubeEventRecorderOptions;
  readonly #recent = new Map<string, Recent>();
  readonly #host = hostname();

  constructor(options: KubeEventRecorderOptions) {
    this.#options = options;
  }

  async record(object: StoredObject, type: EventType, reason: string, message: string): Promise<void> {
    const { client, logger } = this.#options;
    const now = (this.#options.now ?? (() => new Date()))();
    const key = JSON.stringify([
      object.metadata.uid ?? object.metadata.name,
      object.kind,
      type,
      reason,
      message,
    ]);
    const namespace = object.metadata.namespace;
    const recent = this.#recent.get(key);
    try {
      if (recent !== undefined) {
        try {
          await client.patch(
            builtin.events,
            recent.name,
            { count: recent.count + 1, lastTimestamp: now.toISOString() },
            { namespace, patchType: 'merge', signal: AbortSignal.timeout(10_000) },
          );
          recent.count += 1;
          return;
        } catch (error) {
          // Expired (events live an hour by default) or deleted: record it anew.
          if (!hasCode(error, 'ERR_KUBE_NOT_FOUND')) throw error;
        }
      }
      const component = this.#options.component ?? 'tide-controller';
      const name = `${object.metadata.name}.${(now.getTime() * 1000 + Math.floor(Math.random() * 1000)).toString(16)}`;
      await client.create(
        builtin.events,
        {
          apiVersion: 'v1',
          kind: 'Event',
          metadata: { name, namespace },
          involvedObject: {
            apiVersion: object.apiVersion,
            kind: object.kind,
            name: object.metadata.name,
            namespace,
            ...(object.metadata.uid === undefined ? {} : { uid: object.metadata.uid }),
            ...(object.metadata.resourceVersion === undefined
              ? {}
              : { resourceVersion: object.metadata.resourceVersion }),
          },
          type,
          reason,
          message,
          count: 1,
          firstTimestamp: now.toISOString(),
          lastTimestamp: now.toISOString(),
          eventTime: null,
          source: { component, host: this.#host },
          reportingComponent: component,
          reportingInstance: this.#options.instance,
        },
        { namespace, signal: AbortSignal.timeout(10_000) },
      );
      if (this.#recent.size > 4096) this.#recent.clear();
      this.#recent.set(key, { name, namespace, count: 1 });
    } catch (error) {
      logger.warn(
        { reason, object: `${object.kind} ${namespace}/${object.metadata.name}`, err: toError(error) },
        'could not record an event',
      );
    }
  }
}
