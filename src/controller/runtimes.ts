import { RUNTIME_KINDS, type AnyRuntime } from '../api/index.ts';
import type { ResourceStore, StoredObject } from '../store/index.ts';

/** The runtime bound to the dataset `namespace/name`: the one of any runtime kind with its name. */
export async function findRuntime(
  store: ResourceStore,
  namespace: string,
  name: string,
): Promise<(AnyRuntime & StoredObject) | undefined> {
  for (const kind of RUNTIME_KINDS) {
    const runtime = await store.get<AnyRuntime & StoredObject>({ kind, namespace, name });
    if (runtime !== undefined) return runtime;
  }
  return undefined;
}
