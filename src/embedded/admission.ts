import { statfs } from 'node:fs/promises';
import { dirname } from 'node:path';
import {
  CRON_HPA_KIND,
  HPA_KIND,
  findKind,
  formatSize,
  RUNTIME_KINDS,
  type FieldError,
  type Level,
} from '../api/index.ts';
import { parseFuseArgs } from '../fuse/index.ts';
import { parseQuantity } from '../lib/index.ts';
import type { StoredObject } from '../store/index.ts';

/** What the daemon checks beyond the schema, because only this machine knows it. */
export interface AdmissionSettings {
  /** Default tier directory of SSD/HDD levels without a path (the local platform's `cacheDir`). */
  cacheDir: string;
  /** Whether manifests may mount with `allow_other` (`TIDE_ALLOW_OTHER=1` in the daemon's environment). */
  allowOther: boolean;
  /** Workers of one runtime on this machine: each is a process with its own tiers. */
  maxLocalWorkers: number;
}

export interface Admission {
  errors: FieldError[];
  warnings: string[];
}

/**
 * Checks a runtime against this machine before it is stored: `allow_other` only when the daemon's
 * configuration allows it (it would show every user the files of an origin only the daemon's user
 * may read), a bounded number of local worker processes, and tier quotas the file systems can
 * hold. A quota larger than its file system is refused (it can never be reached, and eviction
 * would never start before the disk fills); a total over the free space today only warns, as
 * space may be freed and quotas are reserved as blocks arrive, not at start.
 */
export async function admitObject(object: StoredObject, settings: AdmissionSettings): Promise<Admission> {
  const admission: Admission = { errors: [], warnings: [] };
  if (object.kind === CRON_HPA_KIND) {
    const target = (object['spec'] as { scaleTargetRef?: { kind?: string } } | undefined)?.scaleTargetRef;
    if (target?.kind === HPA_KIND && !servesHpas()) {
      admission.errors.push({
        path: '/spec/scaleTargetRef/kind',
        message: `this Tide daemon serves no ${HPA_KIND}s: target a runtime (its replicas) instead`,
      });
    }
    return admission;
  }
  if (!(RUNTIME_KINDS as readonly string[]).includes(object.kind)) return admission;
  const spec = (object['spec'] ?? {}) as {
    replicas?: number;
    tieredstore?: { levels?: Level[] };
    fuse?: { args?: string[] };
  };
  const replicas = spec.replicas ?? 1;
  if (replicas > settings.maxLocalWorkers) {
    admission.errors.push({
      path: '/spec/replicas',
      message: `embedded mode runs each worker as a process on this machine: at most ${settings.maxLocalWorkers}, got ${replicas}`,
    });
  }
  if (!settings.allowOther && allowsOther(spec.fuse?.args ?? [])) {
    admission.errors.push({
      path: '/spec/fuse/args',
      message:
        'allow_other is refused in embedded mode: it shows the mount to every user of this machine (start the daemon with TIDE_ALLOW_OTHER=1 to allow it)',
    });
  }
  for (const [index, level] of (spec.tieredstore?.levels ?? []).entries()) {
    await checkLevel(level, `/spec/tieredstore/levels/${index}`, Math.max(1, replicas), settings, admission);
  }
  return admission;
}

/** Whether the daemon holds HorizontalPodAutoscalers, which a CronHPA may then target. */
export function servesHpas(): boolean {
  return findKind(HPA_KIND) !== undefined;
}

/** Whether FUSE arguments ask for `allow_other`; malformed ones are the mount's to report. */
export function allowsOther(args: readonly string[]): boolean {
  try {
    return parseFuseArgs(args).options.allowOther;
  } catch {
    return args.some((arg) => arg.includes('allow_other'));
  }
}

async function checkLevel(
  level: Level,
  at: string,
  workers: number,
  settings: AdmissionSettings,
  admission: Admission,
): Promise<void> {
  const paths = (level.path ?? (level.mediumtype === 'MEM' ? '/dev/shm' : settings.cacheDir))
    .split(',')
    .map((path) => path.trim())
    .filter((path) => path !== '');
  const quotas =
    level.quotaList !== undefined
      ? level.quotaList.split(',').map((quota) => parseQuantity(quota) ?? 0)
      : paths.map(() => parseQuantity(String(level.quota ?? 0)) ?? 0);
  const field = level.quotaList !== undefined ? 'quotaList' : 'quota';
  for (const [index, path] of paths.entries()) {
    const quotaBytes = quotas[index] ?? 0;
    const space = await spaceOf(path);
    if (space === undefined) continue;
    if (quotaBytes > space.totalBytes) {
      admission.errors.push({
        path: `${at}/${field}`,
        message: `${formatSize(quotaBytes)} does not fit in the file system of ${path} (${formatSize(space.totalBytes)} in all)`,
      });
    } else if (quotaBytes * workers > space.freeBytes) {
      admission.warnings.push(
        `${at}/${field}: ${workers} worker(s) x ${formatSize(quotaBytes)} exceed the ${formatSize(space.freeBytes)} free in the file system of ${path} today`,
      );
    }
  }
}

/** Total and free bytes of the file system a path is (or will be) on: its nearest existing ancestor's. */
async function spaceOf(path: string): Promise<{ totalBytes: number; freeBytes: number } | undefined> {
  for (let current = path; ; current = dirname(current)) {
    try {
      const stats = await statfs(current);
      return { totalBytes: stats.blocks * stats.bsize, freeBytes: stats.bavail * stats.bsize };
    } catch {
      if (dirname(current) === current) return undefined;
    }
  }
}
