/**
 * Fluid's mutating plugins, by name (Fluid `pkg/webhook/plugins`). Each takes the pod and the
 * datasets it uses and changes the pod in place; `true` ends the chain.
 */
import { DATASET_NUM_LABEL } from '../api/index.ts';
import { addPreferredTerms, addRequiredTerms, schedulingKeysOf } from './affinity.ts';
import type { DatasetUse } from './dataset-use.ts';
import { DATASETS_IN_USE, FILE_PREFETCHER_INJECT, SCHED_LABEL, isTrue } from './fluid-labels.ts';
import type { NodeSelectorTerm, Pod, PreferredSchedulingTerm } from './pod.ts';
import type { PluginName, PluginsProfile, TieredLocality } from './profile.ts';
import { injectFuseSidecars, type SidecarOptions } from './sidecar.ts';

export interface MutationContext {
  pod: Pod;
  datasets: readonly DatasetUse[];
  /** Sent back to the client with the admission response (kubectl prints them). */
  warnings: string[];
}

export type Plugin = (context: MutationContext) => boolean;

/** Locality name of the nodes running a cache worker of the dataset. */
export const NODE_LOCALITY = 'fluid.io/node';
/** Locality name of the nodes running its FUSE pod. */
export const FUSE_LOCALITY = 'fluid.io/fuse';
/** Tide's locality: nodes by the bytes of the dataset their workers hold. */
export const CACHED_BYTES_LOCALITY = 'tide.io/cached-bytes';
/** Preferred terms by cached bytes are written for at most this many nodes per dataset. */
const MAX_BYTES_TERMS = 10;

function labelTrue(key: string): NodeSelectorTerm {
  return { matchExpressions: [{ key, operator: 'In', values: ['true'] }] };
}

const BUILT_IN_LOCALITIES = [
  { name: NODE_LOCALITY, label: (use: DatasetUse) => use.workerNodeLabel },
  { name: FUSE_LOCALITY, label: (use: DatasetUse) => use.fuseNodeLabel },
] as const;

/**
 * Preferred terms on the nodes holding the dataset's bytes: `metadata.name` matchFields, the node
 * with the most bytes at `maxWeight`, the others in proportion, at least 1.
 */
export function cachedBytesTerms(use: DatasetUse, maxWeight: number): PreferredSchedulingTerm[] {
  const nodes = Object.entries(use.cachedBytesByNode)
    .filter(([, bytes]) => bytes > 0)
    .sort(([a, x], [b, y]) => y - x || a.localeCompare(b))
    .slice(0, MAX_BYTES_TERMS);
  const most = nodes[0]?.[1] ?? 0;
  return nodes.map(([node, bytes]) => ({
    weight: Math.max(1, Math.round((maxWeight * bytes) / most)),
    preference: { matchFields: [{ key: 'metadata.name', operator: 'In', values: [node] }] },
  }));
}

/** The dataset names a pod requires by `fluid.io/dataset.<name>.sched: required`. */
function requiredDatasets(pod: Pod): Set<string> {
  const names = new Set<string>();
  for (const [key, value] of Object.entries(pod.metadata.labels ?? {})) {
    const match = SCHED_LABEL.exec(key);
    if (match?.[1] !== undefined && value === 'required') names.add(match[1]);
  }
  return names;
}

function nodeAffinityWithCache(locality: TieredLocality): Plugin {
  const names = new Set([...locality.preferred.map((p) => p.name), ...locality.required]);
  return ({ pod, datasets, warnings }) => {
    if (datasets.length === 0) return false;
    // A pod that already schedules by one of the localities keeps its own choice (as in Fluid).
    if ([...schedulingKeysOf(pod)].some((key) => names.has(key))) {
      warnings.push('the pod already has a cache locality affinity: NodeAffinityWithCache left it as is');
      return false;
    }
    const required = requiredDatasets(pod);
    const requiredTerms: NodeSelectorTerm[] = [];
    const preferredTerms: PreferredSchedulingTerm[] = [];
    for (const use of datasets) {
      if (required.has(use.claimName)) {
        for (const builtIn of BUILT_IN_LOCALITIES)
          if (locality.required.includes(builtIn.name)) requiredTerms.push(labelTrue(builtIn.label(use)));
        continue;
      }
      for (const builtIn of BUILT_IN_LOCALITIES) {
        const weight = locality.preferred.find((p) => p.name === builtIn.name)?.weight;
        if (weight !== undefined) preferredTerms.push({ weight, preference: labelTrue(builtIn.label(use)) });
      }
    }
    const bytesWeight = locality.preferred.find((p) => p.name === CACHED_BYTES_LOCALITY)?.weight;
    // Among the nodes with the cache, those holding more of the dataset are better, required or not.
    if (bytesWeight !== undefined)
      for (const use of datasets) preferredTerms.push(...cachedBytesTerms(use, bytesWeight));
    addRequiredTerms(pod, requiredTerms);
    addPreferredTerms(pod, preferredTerms);
    return false;
  };
}

const preferNodesWithoutCache: Plugin = ({ pod, datasets }) => {
  if (datasets.length === 0)
    addPreferredTerms(pod, [
      {
        weight: 100,
        preference: { matchExpressions: [{ key: DATASET_NUM_LABEL, operator: 'DoesNotExist' }] },
      },
    ]);
  return true;
};

const requireNodeWithFuse: Plugin = ({ pod, datasets }) => {
  const terms: NodeSelectorTerm[] = [];
  for (const use of datasets) {
    const expressions = Object.keys(use.fuseNodeSelector)
      .sort()
      .map((key) => ({ key, operator: 'In' as const, values: [use.fuseNodeSelector[key] ?? ''] }));
    if (expressions.length > 0) terms.push({ matchExpressions: expressions });
  }
  addRequiredTerms(pod, terms);
  return false;
};

const mountPropagationInjector: Plugin = ({ pod, datasets }) => {
  const claims = new Set(datasets.map((use) => use.claimName));
  const volumes = new Set(
    (pod.spec.volumes ?? [])
      .filter((volume) => claims.has(volume.persistentVolumeClaim?.claimName ?? ''))
      .map((volume) => volume.name),
  );
  for (const container of pod.spec.containers)
    for (const mount of container.volumeMounts ?? [])
      if (volumes.has(mount.name) && mount.mountPropagation === undefined)
        mount.mountPropagation = 'HostToContainer';
  return false;
};

const datasetUsageInjector: Plugin = ({ pod, datasets }) => {
  if (datasets.length === 0) return false;
  const names = new Set(
    (pod.metadata.annotations?.[DATASETS_IN_USE] ?? '')
      .split(',')
      .map((name) => name.trim())
      .filter((name) => name !== ''),
  );
  for (const use of datasets) names.add(use.dataset.name);
  pod.metadata.annotations = { ...pod.metadata.annotations, [DATASETS_IN_USE]: [...names].sort().join(',') };
  return false;
};

/** Tide has no file prefetcher: a pod that asks for one is told so, and is otherwise left alone. */
const filePrefetcher: Plugin = ({ pod, warnings }) => {
  if (isTrue(pod.metadata.annotations, FILE_PREFETCHER_INJECT))
    warnings.push(
      `${FILE_PREFETCHER_INJECT}: Tide has no FilePrefetcher, so no prefetch container was added`,
    );
  return false;
};

/** The plugin functions of a profile's chains. */
export function pluginsOf(profile: PluginsProfile, sidecar: SidecarOptions): Record<PluginName, Plugin> {
  return {
    PreferNodesWithoutCache: preferNodesWithoutCache,
    RequireNodeWithFuse: requireNodeWithFuse,
    NodeAffinityWithCache: nodeAffinityWithCache(profile.nodeAffinityWithCache),
    MountPropagationInjector: mountPropagationInjector,
    DatasetUsageInjector: datasetUsageInjector,
    FuseSidecar: (context) => {
      injectFuseSidecars(context.pod, context.datasets, sidecar);
      return false;
    },
    FilePrefetcher: filePrefetcher,
  };
}

export interface ChainResult {
  pod: Pod;
  warnings: string[];
  /** The plugins that ran, in order. */
  ran: PluginName[];
}

/**
 * Runs the profile's chain for a kind of pod (with or without datasets) on a copy of `pod`.
 * @throws {WebhookError} from FuseSidecar
 */
export function runChain(
  pod: Pod,
  datasets: readonly DatasetUse[],
  options: { profile: PluginsProfile; kind: 'serverful' | 'serverless'; sidecar: SidecarOptions },
): ChainResult {
  const chain = options.profile.plugins[options.kind][datasets.length > 0 ? 'withDataset' : 'withoutDataset'];
  const context: MutationContext = { pod: structuredClone(pod), datasets, warnings: [] };
  const plugins = pluginsOf(options.profile, options.sidecar);
  const ran: PluginName[] = [];
  for (const name of chain) {
    ran.push(name);
    if (plugins[name](context)) break;
  }
  return { pod: context.pod, warnings: context.warnings, ran };
}
