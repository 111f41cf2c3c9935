/** The parts of core/v1 Pod the plugins read and write; the rest passes through untouched. */

export interface NodeSelectorRequirement {
  key: string;
  operator: 'In' | 'NotIn' | 'Exists' | 'DoesNotExist' | 'Gt' | 'Lt';
  values?: string[];
}

export interface NodeSelectorTerm {
  matchExpressions?: NodeSelectorRequirement[];
  matchFields?: NodeSelectorRequirement[];
}

export interface PreferredSchedulingTerm {
  /** 1 to 100. */
  weight: number;
  preference: NodeSelectorTerm;
}

export interface NodeAffinity {
  requiredDuringSchedulingIgnoredDuringExecution?: { nodeSelectorTerms: NodeSelectorTerm[] };
  preferredDuringSchedulingIgnoredDuringExecution?: PreferredSchedulingTerm[];
}

export interface VolumeMount {
  name: string;
  mountPath: string;
  mountPropagation?: 'None' | 'HostToContainer' | 'Bidirectional';
  readOnly?: boolean;
  subPath?: string;
  [field: string]: unknown;
}

export interface Container {
  name: string;
  image?: string;
  command?: string[];
  args?: string[];
  env?: Record<string, unknown>[];
  volumeMounts?: VolumeMount[];
  restartPolicy?: 'Always';
  securityContext?: Record<string, unknown>;
  startupProbe?: Record<string, unknown>;
  resources?: Record<string, unknown>;
  [field: string]: unknown;
}

export interface Volume {
  name: string;
  persistentVolumeClaim?: { claimName: string; readOnly?: boolean };
  [field: string]: unknown;
}

export interface PodSpec {
  containers: Container[];
  initContainers?: Container[];
  volumes?: Volume[];
  nodeSelector?: Record<string, string>;
  affinity?: { nodeAffinity?: NodeAffinity; [field: string]: unknown };
  [field: string]: unknown;
}

export interface Pod {
  apiVersion?: string;
  kind?: string;
  metadata: {
    name?: string;
    generateName?: string;
    namespace?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    [field: string]: unknown;
  };
  spec: PodSpec;
  [field: string]: unknown;
}

/** The pod's name for messages: its name, else its generateName followed by `*`. */
export function podNameOf(pod: Pod): string {
  return pod.metadata.name ?? `${pod.metadata.generateName ?? ''}*`;
}

/** Claim names of the pod's PersistentVolumeClaim volumes, in volume order. */
export function claimNamesOf(pod: Pod): string[] {
  return [
    ...new Set(
      (pod.spec.volumes ?? [])
        .map((volume) => volume.persistentVolumeClaim?.claimName)
        .filter((name): name is string => name !== undefined && name !== ''),
    ),
  ];
}
