/** Tide's kinds on a test cluster: get, apply, and wait for a phase, with the status in failures. */
import assert from 'node:assert/strict';
import { KINDS } from '../../src/api/index.ts';
import { resourceType, type KubeClient, type KubeObject, type ResourceType } from '../../src/kube/index.ts';
import { waitFor } from './cluster.ts';

export type TideObject = KubeObject & { metadata: { name: string }; status?: Record<string, unknown> };

const TYPES = new Map<string, ResourceType>(
  KINDS.filter((info) => info.apiVersion !== 'v1').map((info) => [
    info.kind,
    resourceType(info.apiVersion, info.kind, info.plural, { namespaced: true }),
  ]),
);

/** The resource type of a kind Tide serves (Dataset, DataLoad, the runtimes). */
export function tideType(kind: string): ResourceType {
  const type = TYPES.get(kind);
  assert.ok(type !== undefined, `no type for ${kind}`);
  return type;
}

export interface TideObjects {
  get(kind: string, name: string): Promise<TideObject | undefined>;
  apply(object: KubeObject): Promise<void>;
  /** Waits for `status.phase`; the failure says the last status and what `context()` adds. */
  waitForPhase(kind: string, name: string, phase: string, timeoutMs?: number): Promise<TideObject>;
}

export function tideObjects(
  client: KubeClient,
  namespace: string,
  context: () => Promise<string> = () => Promise.resolve(''),
): TideObjects {
  const get = async (kind: string, name: string): Promise<TideObject | undefined> => {
    try {
      return await client.get<TideObject>(tideType(kind), name, { namespace });
    } catch (error) {
      if ((error as { code?: string }).code === 'ERR_KUBE_NOT_FOUND') return undefined;
      throw error;
    }
  };
  return {
    get,
    apply: async (object) => {
      await client.apply(tideType(object.kind ?? ''), object, { namespace, force: true });
    },
    waitForPhase: async (kind, name, phase, timeoutMs = 240_000) => {
      let last: TideObject | undefined;
      try {
        return await waitFor(
          `${kind} ${name} to be ${phase}`,
          async () => {
            last = await get(kind, name);
            return last?.status?.['phase'] === phase ? last : undefined;
          },
          { timeoutMs, intervalMs: 500 },
        );
      } catch (error) {
        throw new Error(
          `${(error as Error).message}; status: ${JSON.stringify(last?.status)}${await context()}`,
          { cause: error },
        );
      }
    },
  };
}
