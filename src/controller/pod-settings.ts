import type { AnyRuntime, Dataset, DataLoad } from '../api/index.ts';
import type { KubeFields, LoadPodSettings, RuntimePodSettings } from '../platform/index.ts';
import { ControllerError } from './errors.ts';

/**
 * The pod fields of a runtime, its dataset and a DataLoad, gathered for the platform. Fluid's
 * runtime kinds keep their component specs unchecked by the schema (engine fields pass through),
 * so the shapes Tide acts on there are checked here, with the field's path in the error.
 */

type Where = 'runtime' | 'dataload';

function invalid(where: Where, path: string, what: string, value: unknown): ControllerError {
  return new ControllerError(
    where === 'dataload' ? 'ERR_INVALID_DATALOAD' : 'ERR_INVALID_RUNTIME',
    `${path} must be ${what}, got ${JSON.stringify(value)}`,
  );
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function stringMap(value: unknown, where: Where, path: string): Record<string, string> | undefined {
  if (value === undefined) return undefined;
  if (!isObject(value) || Object.values(value).some((entry) => typeof entry !== 'string'))
    throw invalid(where, path, 'a map of strings', value);
  return value as Record<string, string>;
}

function object(value: unknown, where: Where, path: string, what: string): KubeFields | undefined {
  if (value === undefined) return undefined;
  if (!isObject(value)) throw invalid(where, path, what, value);
  return value;
}

function objects(value: unknown, where: Where, path: string, what: string): KubeFields[] | undefined {
  if (value === undefined) return undefined;
  if (!Array.isArray(value) || !value.every(isObject)) throw invalid(where, path, what, value);
  return value;
}

function pullSecrets(value: unknown, where: Where, path: string): { name: string }[] | undefined {
  const list = objects(value, where, path, 'a list of {name} references');
  if (list === undefined) return undefined;
  if (!list.every((entry) => typeof entry['name'] === 'string' && entry['name'] !== ''))
    throw invalid(where, path, 'a list of {name} references', value);
  return list.map((entry) => ({ name: entry['name'] as string }));
}

type Defined<T> = { [K in keyof T]-?: T[K] | undefined };

function withoutUndefined<T extends object>(settings: Defined<T>): T {
  return Object.fromEntries(Object.entries(settings).filter(([, value]) => value !== undefined)) as T;
}

/** A runtime's pod settings: its `worker`, `fuse.nodeSelector` and `imagePullSecrets`, and the dataset's placement. */
export function runtimePodSettings(runtime: AnyRuntime, dataset: Dataset): RuntimePodSettings {
  const worker = runtime.spec['worker'] ?? {};
  if (!isObject(worker)) throw invalid('runtime', 'spec.worker', 'an object', worker);
  const fuse = runtime.spec['fuse'] ?? {};
  if (!isObject(fuse)) throw invalid('runtime', 'spec.fuse', 'an object', fuse);
  const port = worker['port'];
  if (port !== undefined && (!Number.isInteger(port) || port < 1 || port > 65535))
    throw invalid('runtime', 'spec.worker.port', 'a port number (1-65535)', port);
  return withoutUndefined<RuntimePodSettings>({
    workerNodeSelector: stringMap(worker['nodeSelector'], 'runtime', 'spec.worker.nodeSelector'),
    workerResources: object(
      worker['resources'],
      'runtime',
      'spec.worker.resources',
      'a ResourceRequirements object',
    ),
    workerPort: port,
    workerNodeAffinity: dataset.spec.nodeAffinity?.required,
    fuseNodeSelector: stringMap(fuse['nodeSelector'], 'runtime', 'spec.fuse.nodeSelector'),
    tolerations: dataset.spec.tolerations,
    imagePullSecrets: pullSecrets(runtime.spec['imagePullSecrets'], 'runtime', 'spec.imagePullSecrets'),
  });
}

/**
 * A DataLoad's pod settings for its loader; the runtime's pull secrets pull the loader image too.
 * The schema types every field but `podMetadata`, which is kept as written, so only its labels
 * and annotations are checked here.
 */
export function loadPodSettings(load: DataLoad, runtime: AnyRuntime | undefined): LoadPodSettings {
  const spec = load.spec;
  const metadata = spec.podMetadata ?? {};
  return withoutUndefined<LoadPodSettings>({
    affinity: spec.affinity,
    tolerations: spec.tolerations,
    nodeSelector: spec.nodeSelector,
    schedulerName: spec.schedulerName === '' ? undefined : spec.schedulerName,
    resources: spec.resources,
    labels: stringMap(metadata['labels'], 'dataload', 'spec.podMetadata.labels'),
    annotations: stringMap(metadata['annotations'], 'dataload', 'spec.podMetadata.annotations'),
    imagePullSecrets:
      runtime === undefined
        ? undefined
        : pullSecrets(runtime.spec['imagePullSecrets'], 'runtime', 'spec.imagePullSecrets'),
  });
}

/** The spec paths of a DataLoad's pod fields, for a platform that runs no pods. */
export function loadPodFieldsSet(load: DataLoad): string[] {
  const fields = [
    'affinity',
    'tolerations',
    'nodeSelector',
    'schedulerName',
    'resources',
    'podMetadata',
  ] as const;
  return fields
    .filter((field) => load.spec[field] !== undefined && load.spec[field] !== '')
    .map((field) => `spec.${field}`);
}
