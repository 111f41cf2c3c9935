/**
 * Which datasets a pod uses (Fluid's CollectRuntimeInfosFromPVCs): its claims that are dataset
 * PVCs, each with its dataset, runtime and, for the sidecar, the runtime's FUSE DaemonSet.
 */
import {
  findKind,
  fluidPath,
  fuseNodeLabel,
  namesOf,
  RUNTIME_KINDS,
  workerNodeLabels,
  type DatasetStatus,
} from '../api/index.ts';
import { hasCode } from '../lib/index.ts';
import { builtin, resourceType, type KubeClient, type KubeObject, type ResourceType } from '../kube/index.ts';
import type { DatasetUse, FuseTemplate } from './dataset-use.ts';
import { WebhookError } from './errors.ts';
import { MANAGED_BY, STORAGE_LABEL_PREFIX } from './fluid-labels.ts';
import { claimNamesOf, type Container, type Pod, type Volume } from './pod.ts';

interface DatasetObject extends KubeObject {
  status?: DatasetStatus;
}

interface RuntimeObject extends KubeObject {
  spec?: { fuse?: { nodeSelector?: Record<string, string> } };
}

interface DaemonSetObject extends KubeObject {
  spec?: { template?: { spec?: { containers?: Container[]; volumes?: Volume[] } } };
}

function typeOf(kind: string): ResourceType {
  const info = findKind(kind);
  if (info === undefined) throw new TypeError(`no kind ${kind}`);
  return resourceType(info.apiVersion, info.kind, info.plural, { namespaced: true });
}

const DATASETS = typeOf('Dataset');
const RUNTIMES = new Map(
  RUNTIME_KINDS.map((kind) => [kind.replace(/Runtime$/, '').toLowerCase(), typeOf(kind)]),
);

export interface DatasetsOfPodOptions {
  kube: KubeClient;
  namespace: string;
  /** Read the FUSE DaemonSets too (serverless pods). */
  withFuse: boolean;
  /** Do not require Bound datasets (`sidecar.fluid.io/skip-precheck`). */
  skipPrecheck: boolean;
  /** The platform's mount root, under which the FUSE container mounts each dataset. */
  mountRoot: string;
  signal: AbortSignal;
}

async function getOrUndefined<T extends KubeObject>(
  kube: KubeClient,
  type: ResourceType,
  name: string,
  options: { namespace: string; signal: AbortSignal },
): Promise<T | undefined> {
  try {
    return await kube.get<T>(type, name, options);
  } catch (error) {
    if (hasCode(error, 'ERR_KUBE_NOT_FOUND')) return undefined;
    throw error;
  }
}

function problem(message: string): WebhookError {
  return new WebhookError('ERR_WEBHOOK_DATASET', message);
}

function isDatasetClaim(claim: KubeObject): boolean {
  const labels = claim.metadata?.labels ?? {};
  return MANAGED_BY in labels || Object.keys(labels).some((key) => key.startsWith(STORAGE_LABEL_PREFIX));
}

/**
 * The datasets of the pod's claims, in claim order. A claim that is no dataset's is skipped; a claim
 * that does not exist is skipped too unless a Dataset of its name exists (then it is not Bound yet).
 * @throws {WebhookError} ERR_WEBHOOK_DATASET naming the dataset and what to do about it
 * @throws {KubeError} when the API server cannot be read
 */
export async function datasetsOfPod(pod: Pod, options: DatasetsOfPodOptions): Promise<DatasetUse[]> {
  const { kube, namespace, signal } = options;
  const uses: DatasetUse[] = [];
  for (const claimName of claimNamesOf(pod)) {
    const claim = await getOrUndefined(kube, builtin.persistentVolumeClaims, claimName, {
      namespace,
      signal,
    });
    if (claim !== undefined && !isDatasetClaim(claim)) continue;
    const name = claim?.metadata?.labels?.[MANAGED_BY] ?? claimName;
    const dataset = await getOrUndefined<DatasetObject>(kube, DATASETS, name, { namespace, signal });
    if (dataset === undefined) {
      if (claim === undefined) continue;
      throw problem(
        `PersistentVolumeClaim ${claimName} belongs to dataset ${namespace}/${name}, which does not exist: create the Dataset or use another claim`,
      );
    }
    const phase = dataset.status?.phase ?? '';
    if (!options.skipPrecheck && phase !== 'Bound') {
      const ready = dataset.status?.conditions?.find((condition) => condition.type === 'Ready');
      throw problem(
        `dataset ${namespace}/${name} is not Bound (phase ${phase === '' ? 'None' : phase}` +
          `${ready?.message === undefined ? '' : `: ${ready.message}`}): create its runtime or wait until it is Bound, then create the pod again`,
      );
    }
    if (claim === undefined) {
      if (options.skipPrecheck) continue;
      throw problem(
        `dataset ${namespace}/${name} has no PersistentVolumeClaim yet: wait until the operator has created it, then create the pod again`,
      );
    }
    const bound = dataset.status?.runtimes?.[0] as { name?: string; type?: string } | undefined;
    const runtimeType = RUNTIMES.get(bound?.type ?? '');
    const runtime =
      runtimeType === undefined
        ? undefined
        : await getOrUndefined<RuntimeObject>(kube, runtimeType, bound?.name ?? name, { namespace, signal });
    if (runtime === undefined)
      throw problem(`dataset ${namespace}/${name} has no runtime: create a runtime of the same name`);
    const key = { namespace, name };
    const use: DatasetUse = {
      claimName,
      dataset: key,
      workerNodeLabel: workerNodeLabels(key)[0],
      fuseNodeLabel: fuseNodeLabel(key),
      fuseNodeSelector: runtime.spec?.fuse?.nodeSelector ?? {},
      cachedBytesByNode: dataset.status?.cachedBytesByNode ?? {},
    };
    if (options.withFuse) use.fuse = await fuseTemplate(kube, key, options);
    uses.push(use);
  }
  return uses;
}

async function fuseTemplate(
  kube: KubeClient,
  dataset: { namespace: string; name: string },
  options: DatasetsOfPodOptions,
): Promise<FuseTemplate> {
  const name = namesOf(dataset).daemonSet;
  const daemonSet = await getOrUndefined<DaemonSetObject>(kube, builtin.daemonSets, name, {
    namespace: dataset.namespace,
    signal: options.signal,
  });
  const spec = daemonSet?.spec?.template?.spec;
  const container = spec?.containers?.[0];
  if (spec === undefined || container === undefined)
    throw problem(
      `dataset ${dataset.namespace}/${dataset.name} has no FUSE DaemonSet ${name} to make the sidecar of: wait until its runtime is set up`,
    );
  return { container, volumes: spec.volumes ?? [], mountPath: fluidPath(options.mountRoot, dataset) };
}
