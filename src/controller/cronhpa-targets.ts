import { HPA_KIND, RUNTIME_KINDS } from '../api/index.ts';
import type { ObjectKey, ResourceStore, StoredObject } from '../store/index.ts';
import { ControllerError } from './errors.ts';

type RuntimeObject = StoredObject & { spec: { replicas?: number } };

interface HpaObject extends StoredObject {
  spec: {
    minReplicas?: number;
    maxReplicas: number;
    scaleTargetRef: { apiVersion?: string; kind: string; name: string };
  };
  status?: { currentReplicas?: number };
}

/**
 * Sets a runtime's replicas (what its scale subresource writes: `.spec.replicas`), in the store of
 * either mode. Returns the original's message. @throws {ControllerError} ERR_CRONHPA_TARGET
 */
export async function scaleRuntime(store: ResourceStore, key: ObjectKey, replicas: number): Promise<string> {
  const runtime = await store.get<RuntimeObject>(key);
  if (runtime === undefined) throw notFound(key);
  const current = runtime.spec.replicas ?? 1;
  if (current !== replicas) await store.update({ ...runtime, spec: { ...runtime.spec, replicas } });
  return `current replicas:${current}, desired replicas:${replicas}.`;
}

/**
 * An HPA as the target, as the original moves it: `maxReplicas` up to the size, `minReplicas`
 * down to it, and up to it when the HPA runs fewer; then the HPA's own target is scaled when it
 * runs fewer than the size and is a Tide runtime (the HPA scales other kinds itself from its new
 * minimum). @throws {ControllerError} ERR_CRONHPA_TARGET
 */
export async function scaleHpa(
  store: ResourceStore,
  namespace: string,
  name: string,
  size: number,
): Promise<string> {
  const key = { kind: HPA_KIND, namespace, name };
  const hpa = await store.get<HpaObject>(key);
  if (hpa === undefined) throw notFound(key);
  const spec = { ...hpa.spec };
  const current = hpa.status?.currentReplicas ?? 0;
  const min = spec.minReplicas ?? 1;
  if (size > spec.maxReplicas) spec.maxReplicas = size;
  if (size < min) spec.minReplicas = size;
  if (current === min && size < current) spec.minReplicas = size;
  if (current < size) spec.minReplicas = size;
  if (!isSameSpec(spec, hpa.spec)) await store.update({ ...hpa, spec });
  if (current >= size)
    return `Skip scale replicas because HPA ${name} in namespace ${namespace} current replicas:${current} >= desired replicas:${size}.`;
  const target = spec.scaleTargetRef;
  if ((RUNTIME_KINDS as readonly string[]).includes(target.kind))
    return scaleRuntime(store, { kind: target.kind, namespace, name: target.name }, size);
  return `current replicas:${current}, desired replicas:${size}.`;
}

function isSameSpec(a: HpaObject['spec'], b: HpaObject['spec']): boolean {
  return a.minReplicas === b.minReplicas && a.maxReplicas === b.maxReplicas;
}

function notFound(key: ObjectKey): ControllerError {
  return new ControllerError(
    'ERR_CRONHPA_TARGET',
    `Cannot scale ${key.kind} ${key.name}: it is not in namespace ${key.namespace}`,
  );
}
