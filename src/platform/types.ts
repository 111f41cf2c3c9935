import type { Level } from '../api/index.ts';
import type { UfsMountConfig } from '../ufs/index.ts';

/** A dataset's identity on a platform: `<namespace>/<name>`, as Fluid's `fluid.io/dataset-id`. */
export interface DatasetRef {
  namespace: string;
  name: string;
}

/** One mount of the dataset with its secrets resolved and its place in the unified namespace. */
export interface ResolvedMount extends UfsMountConfig {
  /** Where it appears in the dataset: `/` or `/<name>`. */
  path: string;
}

/** What a runtime should look like: the reconcilers compute it, the platform makes it so. */
export interface RuntimePlan {
  dataset: DatasetRef;
  mounts: readonly ResolvedMount[];
  tiers: readonly Level[];
  blockSizeBytes: number;
  /** Cache workers wanted (`spec.replicas`). */
  workers: number;
  /** FUSE arguments as written in the runtime (`-okernel_cache`, `--fuse-opts=…`). */
  fuseArgs: readonly string[];
  /** The runtime's FUSE container fields (`spec.fuse`): image, pull policy, resources, environment. */
  fuseContainer?: FuseContainerPlan;
  readOnly: boolean;
  /**
   * When a node's FUSE pod goes after the last pod there stops using the dataset (the runtime's
   * `spec.fuse.cleanPolicy`, Fluid's default OnRuntimeDeleted); the CSI node plugin acts on it.
   */
  fuseCleanPolicy: 'OnDemand' | 'OnRuntimeDeleted' | 'OnFuseChanged';
  /** Where and how the runtime's pods run; only a platform that `schedulesPods` applies it. */
  pods: RuntimePodSettings;
}

/** core/v1 objects kept as the manifest wrote them, after a shape check. */
export type KubeFields = Record<string, unknown>;

/**
 * The runtime's pod fields, from the runtime (`worker.*`, `fuse.nodeSelector`, `imagePullSecrets`)
 * and its dataset (`nodeAffinity`, `tolerations`), as Fluid places a runtime's pods.
 */
export interface RuntimePodSettings {
  /** `spec.worker.nodeSelector`: the nodes workers may run on. */
  workerNodeSelector?: Record<string, string>;
  /** `spec.worker.resources` (ResourceRequirements) of the worker container. */
  workerResources?: KubeFields;
  /** `spec.worker.port`: the workers' container port; undefined: the platform's. */
  workerPort?: number;
  /** The dataset's `nodeAffinity.required` (a NodeSelector): the workers' required node affinity. */
  workerNodeAffinity?: KubeFields;
  /** `spec.fuse.nodeSelector`: FUSE pods run only there (beside the lazy-FUSE label). */
  fuseNodeSelector?: Record<string, string>;
  /** The dataset's `tolerations`, given to worker and FUSE pods. */
  tolerations?: readonly KubeFields[];
  /** `spec.imagePullSecrets`, given to every pod of the runtime and its loads. */
  imagePullSecrets?: readonly { name: string }[];
}

/** A DataLoad's pod fields for its loader Job (Fluid's `affinity`, `nodeSelector`, …). */
export interface LoadPodSettings {
  affinity?: KubeFields;
  tolerations?: readonly KubeFields[];
  nodeSelector?: Record<string, string>;
  schedulerName?: string;
  resources?: KubeFields;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  imagePullSecrets?: readonly { name: string }[];
}

export interface FuseContainerPlan {
  /** `image:imageTag`; undefined: the platform's FUSE image. */
  image?: string;
  imagePullPolicy?: 'Always' | 'IfNotPresent' | 'Never';
  /** core/v1 ResourceRequirements, as written. */
  resources?: Record<string, unknown>;
  /** core/v1 EnvVars, as written, after the platform's own. */
  env?: readonly Record<string, unknown>[];
}

export interface WorkerObservation {
  desired: number;
  current: number;
  ready: number;
  /** Why workers are not ready, when the platform knows (a worker that cannot start says why). */
  problem?: string;
}

/** What the platform sees after applying a plan. */
export interface RuntimeObservation {
  workers: WorkerObservation;
  fuse: { desired: number; ready: number; mountPath?: string };
}

/** Cache statistics summed over the workers of one dataset. */
export interface CacheStatistics {
  /** Bytes of the current file versions held in cache, counted once. */
  cachedBytes: number;
  capacityBytes: number;
  usedBytes: number;
  bytesReadLocal: number;
  bytesReadRemote: number;
  bytesReadOrigin: number;
  /**
   * Cached bytes held by the workers of each node, by node name (Kubernetes only: what the
   * admission webhook weights its node affinity by). Undefined where workers have no node.
   */
  cachedBytesByNode?: Record<string, number>;
}

/** What a DataLoad asks the platform to warm. */
export interface LoadPlan {
  dataset: DatasetRef;
  /** Dataset paths (`/` or `/hbase/conf`) and the copies wanted of each block. */
  targets: readonly { path: string; replicas: number }[];
  /** Re-list the origin and drop blocks of changed or deleted files first (`loadMetadata`). */
  loadMetadata: boolean;
  /** Files loaded at once. */
  parallelism: number;
  /** Cap on bytes per second read from the origin; undefined for none. */
  bandwidthBytesPerSecond?: number;
  /** The loader pod's fields; only a platform that `schedulesPods` applies them. */
  pod?: LoadPodSettings;
}

export interface LoadProgress {
  filesDone: number;
  bytesDone: number;
  /** Known once listing has finished; listing and loading overlap. */
  filesTotal?: number;
  bytesTotal?: number;
  /** Cached bytes of files found changed or gone at the origin, dropped once the targets loaded. */
  staleBytesReleased?: number;
}

/**
 * Where runtimes materialise: local supervised processes in embedded mode, StatefulSets,
 * DaemonSets and Jobs in Kubernetes. The reconcilers know only this interface.
 */
export interface Platform {
  /**
   * Whether runtimes and loads run as scheduled pods, so that pod fields (node selectors,
   * tolerations, resources, pull secrets) apply; the reconcilers report them as ignored otherwise.
   */
  readonly schedulesPods: boolean;
  /** Starts, scales or reconfigures the runtime to match `plan`; idempotent. */
  apply(plan: RuntimePlan, signal: AbortSignal): Promise<RuntimeObservation>;
  /** Stops the workers and the mount; removes cached blocks when `cleanCache`. */
  remove(dataset: DatasetRef, options: { cleanCache: boolean; signal: AbortSignal }): Promise<void>;
  /** Descriptions of processes (or pods) that use the dataset right now; deletion waits for none. */
  usersOf(dataset: DatasetRef, signal: AbortSignal): Promise<string[]>;
  statistics(dataset: DatasetRef, signal: AbortSignal): Promise<CacheStatistics | undefined>;
  /**
   * Warms the dataset's cache: every block of the targets fetched from the origin once, by its
   * owner workers. Reports progress as it goes; rejects with the reason when the load fails.
   */
  load(
    plan: LoadPlan,
    options: { signal: AbortSignal; onProgress: (progress: LoadProgress) => void },
  ): Promise<LoadProgress>;
}
