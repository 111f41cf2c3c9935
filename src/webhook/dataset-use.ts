import type { DatasetKey } from '../api/index.ts';
import type { Container, Volume } from './pod.ts';

/** The runtime's FUSE pod template (from its DaemonSet), which the sidecar is made of. */
export interface FuseTemplate {
  /** The DaemonSet's FUSE container. */
  container: Container;
  /** The DaemonSet's volumes. */
  volumes: Volume[];
  /** Where the container mounts the dataset (the mount's `target`, Fluid's `fluid_path`). */
  mountPath: string;
}

/** A dataset a pod uses through one of its claims (Fluid's RuntimeInfo), with what the plugins need. */
export interface DatasetUse {
  /** The pod's claim: the dataset's PersistentVolumeClaim. */
  claimName: string;
  dataset: DatasetKey;
  /** `fluid.io/s-<ns>-<name>`: nodes running a cache worker of the dataset. */
  workerNodeLabel: string;
  /** `fluid.io/f-<ns>-<name>`: nodes running its FUSE pod. */
  fuseNodeLabel: string;
  /** The runtime's `spec.fuse.nodeSelector`. */
  fuseNodeSelector: Readonly<Record<string, string>>;
  /** The dataset's `status.cachedBytesByNode`. */
  cachedBytesByNode: Readonly<Record<string, number>>;
  /** Present for serverless pods (read only when the sidecar is wanted). */
  fuse?: FuseTemplate;
}
