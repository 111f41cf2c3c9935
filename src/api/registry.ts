import type { TSchema } from '@sinclair/typebox';
import { API_VERSION } from './common.ts';
import { Dataset } from './dataset.ts';
import { DataLoad } from './dataload.ts';
import { AlluxioRuntime, GooseFSRuntime, JindoRuntime, TideRuntime } from './runtime.ts';
import { Secret } from './secret.ts';
import { CRON_HPA_API_VERSION, CRON_HPA_KIND, CronHorizontalPodAutoscaler } from './cronhpa.ts';

export type NameRule = 'dns1035Label' | 'dns1123Subdomain';

export interface PrinterColumn {
  name: string;
  jsonPath: string;
  type: 'string' | 'integer' | 'date';
  priority?: number;
}

/** Everything Tide knows about one kind: its schema, names, columns and subresources. */
export interface KindInfo {
  kind: string;
  apiVersion: string;
  plural: string;
  singular: string;
  shortNames: readonly string[];
  schema: TSchema;
  nameRule: NameRule;
  /** Whether the kind is a runtime with a scale subresource on `.spec.replicas`. */
  scalable: boolean;
  printerColumns: readonly PrinterColumn[];
}

const RUNTIME_COLUMNS: readonly PrinterColumn[] = [
  { name: 'Ready Masters', jsonPath: '.status.masterNumberReady', type: 'integer', priority: 10 },
  {
    name: 'Desired Masters',
    jsonPath: '.status.desiredMasterNumberScheduled',
    type: 'integer',
    priority: 10,
  },
  { name: 'Master Phase', jsonPath: '.status.masterPhase', type: 'string' },
  { name: 'Ready Workers', jsonPath: '.status.workerNumberReady', type: 'integer' },
  { name: 'Desired Workers', jsonPath: '.status.desiredWorkerNumberScheduled', type: 'integer' },
  { name: 'Worker Phase', jsonPath: '.status.workerPhase', type: 'string' },
  { name: 'Ready Fuses', jsonPath: '.status.fuseNumberReady', type: 'integer', priority: 10 },
  { name: 'Desired Fuses', jsonPath: '.status.desiredFuseNumberScheduled', type: 'integer', priority: 10 },
  { name: 'Fuse Phase', jsonPath: '.status.fusePhase', type: 'string' },
  { name: 'Age', jsonPath: '.metadata.creationTimestamp', type: 'date' },
];

function runtime(kind: string, shortName: string, schema: TSchema): KindInfo {
  const singular = kind.toLowerCase();
  return {
    kind,
    apiVersion: API_VERSION,
    plural: `${singular}s`,
    singular,
    shortNames: [shortName],
    schema,
    nameRule: 'dns1035Label',
    scalable: true,
    printerColumns: RUNTIME_COLUMNS,
  };
}

export const KINDS: readonly KindInfo[] = [
  {
    kind: 'Dataset',
    apiVersion: API_VERSION,
    plural: 'datasets',
    singular: 'dataset',
    shortNames: ['dataset'],
    schema: Dataset,
    nameRule: 'dns1035Label',
    scalable: false,
    printerColumns: [
      { name: 'Ufs Total Size', jsonPath: '.status.ufsTotal', type: 'string' },
      { name: 'Cached', jsonPath: '.status.cacheStates.cached', type: 'string' },
      { name: 'Cache Capacity', jsonPath: '.status.cacheStates.cacheCapacity', type: 'string' },
      { name: 'Cached Percentage', jsonPath: '.status.cacheStates.cachedPercentage', type: 'string' },
      { name: 'Phase', jsonPath: '.status.phase', type: 'string' },
      { name: 'Total Files', jsonPath: '.status.fileNum', type: 'string', priority: 11 },
      {
        name: 'Cache Hit Ratio',
        jsonPath: '.status.cacheStates.cacheHitRatio',
        type: 'string',
        priority: 10,
      },
      { name: 'Age', jsonPath: '.metadata.creationTimestamp', type: 'date' },
    ],
  },
  {
    kind: 'DataLoad',
    apiVersion: API_VERSION,
    plural: 'dataloads',
    singular: 'dataload',
    shortNames: ['load'],
    schema: DataLoad,
    nameRule: 'dns1123Subdomain',
    scalable: false,
    printerColumns: [
      { name: 'Dataset', jsonPath: '.spec.dataset.name', type: 'string' },
      { name: 'Phase', jsonPath: '.status.phase', type: 'string' },
      { name: 'Age', jsonPath: '.metadata.creationTimestamp', type: 'date' },
      { name: 'Duration', jsonPath: '.status.duration', type: 'string' },
    ],
  },
  runtime('TideRuntime', 'tide', TideRuntime),
  runtime('AlluxioRuntime', 'alluxio', AlluxioRuntime),
  runtime('JindoRuntime', 'jindo', JindoRuntime),
  runtime('GooseFSRuntime', 'goosefs', GooseFSRuntime),
  {
    kind: CRON_HPA_KIND,
    apiVersion: CRON_HPA_API_VERSION,
    plural: 'cronhorizontalpodautoscalers',
    singular: 'cronhorizontalpodautoscaler',
    shortNames: ['cronhpa'],
    schema: CronHorizontalPodAutoscaler,
    nameRule: 'dns1123Subdomain',
    scalable: false,
    printerColumns: [
      { name: 'Target Kind', jsonPath: '.spec.scaleTargetRef.kind', type: 'string' },
      { name: 'Target Name', jsonPath: '.spec.scaleTargetRef.name', type: 'string' },
      { name: 'Age', jsonPath: '.metadata.creationTimestamp', type: 'date' },
    ],
  },
  {
    kind: 'Secret',
    apiVersion: 'v1',
    plural: 'secrets',
    singular: 'secret',
    shortNames: [],
    schema: Secret,
    nameRule: 'dns1123Subdomain',
    scalable: false,
    printerColumns: [],
  },
];

/** Finds a kind by its name, plural, singular or short name, case-insensitively (`ds`, `dataload`). */
export function findKind(name: string): KindInfo | undefined {
  const wanted = name.toLowerCase();
  return KINDS.find(
    (info) =>
      info.kind.toLowerCase() === wanted ||
      info.plural === wanted ||
      info.singular === wanted ||
      info.shortNames.includes(wanted),
  );
}
