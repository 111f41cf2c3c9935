import { stringify } from 'yaml';

type Row = Record<string, unknown>;

interface Column {
  header: string;
  value: (object: Row) => string;
  wide?: boolean;
}

function at(object: Row, path: string): unknown {
  let current: unknown = object;
  for (const part of path.split('.')) {
    if (typeof current !== 'object' || current === null) return undefined;
    current = (current as Row)[part];
  }
  return current;
}

function text(path: string): (object: Row) => string {
  return (object) => {
    const value = at(object, path);
    if (typeof value === 'string') return value;
    return typeof value === 'number' || typeof value === 'boolean' ? String(value) : '';
  };
}

/** kubectl's age: `45s`, `7m38s`, `5h12m`, `3d`. */
export function formatAge(timestamp: unknown, now: number = Date.now()): string {
  if (typeof timestamp !== 'string') return '';
  const seconds = Math.max(0, Math.floor((now - Date.parse(timestamp)) / 1000));
  if (seconds < 120) return `${seconds}s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 10) return `${minutes}m${seconds % 60}s`;
  if (minutes < 180) return `${minutes}m`;
  const hours = Math.floor(minutes / 60);
  if (hours < 48) return `${hours}h${minutes % 60 === 0 ? '' : `${minutes % 60}m`}`;
  return `${Math.floor(hours / 24)}d`;
}

/** A progress bar and figures: `[#######-------] 45% 450/1000 files 1.2GiB/2.7GiB 110MiB/s ETA 12s`. */
export function formatProgress(progress: unknown, width = 20): string {
  if (typeof progress !== 'object' || progress === null) return '';
  const { filesDone, filesTotal, bytesDone, bytesTotal, throughputBytesPerSecond, etaSeconds } =
    progress as Record<string, number | undefined>;
  const ratio =
    bytesTotal !== undefined && bytesTotal > 0 ? Math.min(1, (bytesDone ?? 0) / bytesTotal) : undefined;
  const filled = ratio === undefined ? 0 : Math.round(ratio * width);
  const parts = [
    `[${'#'.repeat(filled)}${'-'.repeat(width - filled)}]`,
    ratio === undefined ? '' : `${Math.floor(ratio * 100)}%`,
    `${filesDone ?? 0}${filesTotal === undefined ? '' : `/${filesTotal}`} files`,
    `${bytes(bytesDone ?? 0)}${bytesTotal === undefined ? '' : `/${bytes(bytesTotal)}`}`,
    throughputBytesPerSecond === undefined ? '' : `${bytes(throughputBytesPerSecond)}/s`,
    etaSeconds === undefined ? '' : `ETA ${Math.ceil(etaSeconds)}s`,
  ];
  return parts.filter((part) => part !== '').join(' ');
}

function bytes(value: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let size = value;
  let unit = 0;
  while (size >= 1024 && unit < units.length - 1) {
    size /= 1024;
    unit += 1;
  }
  return `${size.toFixed(unit === 0 ? 0 : 1)}${units[unit] ?? 'B'}`;
}

const NAME: Column = { header: 'NAME', value: text('metadata.name') };
const AGE: Column = { header: 'AGE', value: (object) => formatAge(at(object, 'metadata.creationTimestamp')) };

const RUNTIME_COLUMNS: Column[] = [
  NAME,
  { header: 'READY WORKERS', value: (object) => text('status.workerNumberReady')(object) || '0' },
  {
    header: 'DESIRED WORKERS',
    value: (object) => String((at(object, 'spec.replicas') as number | undefined) ?? 1),
  },
  { header: 'WORKER PHASE', value: text('status.workerPhase') },
  { header: 'FUSE PHASE', value: text('status.fusePhase') },
  { header: 'MASTER PHASE', value: text('status.masterPhase'), wide: true },
  { header: 'SETUP', value: text('status.setupDuration'), wide: true },
  AGE,
];

const COLUMNS: Record<string, Column[]> = {
  Dataset: [
    NAME,
    { header: 'UFS TOTAL SIZE', value: text('status.ufsTotal') },
    { header: 'CACHED', value: text('status.cacheStates.cached') },
    { header: 'CACHE CAPACITY', value: text('status.cacheStates.cacheCapacity') },
    { header: 'CACHED PERCENTAGE', value: text('status.cacheStates.cachedPercentage') },
    { header: 'PHASE', value: text('status.phase') },
    { header: 'TOTAL FILES', value: text('status.fileNum'), wide: true },
    { header: 'CACHE HIT RATIO', value: text('status.cacheStates.cacheHitRatio'), wide: true },
    { header: 'MOUNT PATH', value: text('status.mountPath'), wide: true },
    AGE,
  ],
  DataLoad: [
    NAME,
    { header: 'DATASET', value: text('spec.dataset.name') },
    { header: 'PHASE', value: text('status.phase') },
    AGE,
    { header: 'DURATION', value: text('status.duration') },
    { header: 'PROGRESS', value: (object) => formatProgress(at(object, 'status.progress'), 10) },
  ],
  TideRuntime: RUNTIME_COLUMNS,
  AlluxioRuntime: RUNTIME_COLUMNS,
  JindoRuntime: RUNTIME_COLUMNS,
  GooseFSRuntime: RUNTIME_COLUMNS,
  CronHorizontalPodAutoscaler: [
    NAME,
    {
      header: 'TARGET',
      value: (object) =>
        `${text('spec.scaleTargetRef.kind')(object)}/${text('spec.scaleTargetRef.name')(object)}`,
    },
    { header: 'JOBS', value: (object) => String(((at(object, 'spec.jobs') ?? []) as unknown[]).length) },
    { header: 'LAST RUN', value: lastCronHpaRun },
    AGE,
  ],
  Secret: [
    NAME,
    { header: 'TYPE', value: (object) => text('type')(object) || 'Opaque' },
    { header: 'DATA', value: (object) => String(Object.keys(at(object, 'data') ?? {}).length) },
    AGE,
  ],
};

/** The job that ran last and how: `up Succeed 12s ago`. */
function lastCronHpaRun(object: Row): string {
  const conditions = (at(object, 'status.conditions') ?? []) as Row[];
  const ran = conditions.filter((condition) => condition['state'] !== 'Submitted');
  const last = ran.sort((a, b) => String(b['lastProbeTime']).localeCompare(String(a['lastProbeTime'])))[0];
  if (last === undefined) return conditions.length === 0 ? '' : '<none>';
  return `${text('name')(last)} ${text('state')(last)} ${formatAge(last['lastProbeTime'])} ago`;
}

/** Renders objects of one kind as an aligned table with kubectl-like columns. */
export function renderTable(kind: string, objects: readonly Row[], wide: boolean): string {
  const columns = (COLUMNS[kind] ?? [NAME, AGE]).filter((column) => wide || column.wide !== true);
  const rows = [
    columns.map((column) => column.header),
    ...objects.map((object) => columns.map((column) => column.value(object))),
  ];
  const widths = columns.map((_, index) => Math.max(...rows.map((row) => (row[index] ?? '').length)));
  return rows
    .map((row) =>
      row
        .map((cell, index) => (index === row.length - 1 ? cell : cell.padEnd((widths[index] ?? 0) + 3)))
        .join('')
        .trimEnd(),
    )
    .join('\n');
}

export function renderObjects(objects: readonly Row[], format: 'json' | 'yaml', single: boolean): string {
  const value = single ? objects[0] : { apiVersion: 'v1', kind: 'List', items: objects };
  return format === 'json' ? JSON.stringify(value, null, 2) : stringify(value).trimEnd();
}

/**
 * One change seen by `tide get --watch`: a table row (marked when deleted), or the whole object as
 * one line of JSON (JSON Lines, for scripts) or one YAML document, with the event type beside it.
 */
export function renderWatchEvent(
  kind: string,
  event: { type: string; object: Row },
  format: 'table' | 'wide' | 'json' | 'yaml',
): string {
  if (format === 'json') return JSON.stringify({ type: event.type, object: event.object });
  if (format === 'yaml') return `---\n${stringify({ type: event.type, object: event.object }).trimEnd()}`;
  const row = renderTable(kind, [event.object], format === 'wide').split('\n')[1] ?? '';
  return event.type === 'DELETED' ? `${row}   (deleted)` : row;
}

/** `tide describe`: the object as YAML, then its conditions and events as tables. */
export function renderDescription(object: Row, events: readonly Row[]): string {
  const conditions = (at(object, 'status.conditions') ?? []) as Row[];
  const lines = [
    stringify({
      ...object,
      status: { ...(object['status'] as Row | undefined), conditions: undefined },
    }).trimEnd(),
  ];
  lines.push('', 'Conditions:');
  if (conditions.length === 0) lines.push('  <none>');
  for (const condition of conditions) {
    lines.push(
      // A CronHPA's conditions are per job (name, state), as kubernetes-cronhpa-controller writes them.
      `  ${text('type')(condition) || text('name')(condition)}=${text('status')(condition) || text('state')(condition)}  ${text('reason')(condition) || text('lastProbeTime')(condition)}: ${text('message')(condition)}`,
    );
  }
  lines.push('', 'Events:');
  if (events.length === 0) lines.push('  <none>');
  for (const event of events) {
    const count = Number(event['count'] ?? 1);
    lines.push(
      `  ${text('type')(event).padEnd(8)} ${text('reason')(event).padEnd(22)} ${formatAge(event['lastTimestamp'])} ago${count > 1 ? ` (x${count})` : ''}  ${text('message')(event)}`,
    );
  }
  return lines.join('\n');
}
