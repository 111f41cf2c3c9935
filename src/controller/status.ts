import { formatBytes } from '../lib/index.ts';
import type { CacheStatistics } from '../platform/index.ts';

const UNITS: Record<string, number> = {
  B: 1,
  KiB: 2 ** 10,
  MiB: 2 ** 20,
  GiB: 2 ** 30,
  TiB: 2 ** 40,
  PiB: 2 ** 50,
  EiB: 2 ** 60,
};

/** The byte count of a size Fluid printed (`545.32MiB`), or undefined for `[Calculating]` and the like. */
export function parseFormattedBytes(text: string | undefined): number | undefined {
  const match = /^([\d.]+)(B|KiB|MiB|GiB|TiB|PiB|EiB)$/.exec(text ?? '');
  if (match === null) return undefined;
  return Number(match[1]) * (UNITS[match[2] ?? 'B'] ?? 1);
}

function percent(part: number, whole: number): string {
  return `${(whole > 0 ? (part / whole) * 100 : 0).toFixed(1)}%`;
}

/** Fluid's `cacheStates` map from the workers' statistics and the UFS total, formatted as Fluid does. */
export function cacheStatesOf(
  stats: CacheStatistics | undefined,
  ufsTotalBytes: number | undefined,
): Record<string, string> {
  const cached = stats?.cachedBytes ?? 0;
  const reads = (stats?.bytesReadLocal ?? 0) + (stats?.bytesReadRemote ?? 0) + (stats?.bytesReadOrigin ?? 0);
  const hits = (stats?.bytesReadLocal ?? 0) + (stats?.bytesReadRemote ?? 0);
  return {
    cached: formatBytes(cached),
    cacheCapacity: formatBytes(stats?.capacityBytes ?? 0),
    cachedPercentage:
      ufsTotalBytes === undefined ? '' : percent(Math.min(cached, ufsTotalBytes), ufsTotalBytes),
    cacheHitRatio: percent(hits, reads),
    localHitRatio: percent(stats?.bytesReadLocal ?? 0, reads),
    remoteHitRatio: percent(stats?.bytesReadRemote ?? 0, reads),
  };
}

/** Fluid's runtime component phase from ready and desired counts. */
export function componentPhase(ready: number, desired: number): 'Ready' | 'PartialReady' | 'NotReady' {
  if (ready >= desired) return 'Ready';
  return ready > 0 ? 'PartialReady' : 'NotReady';
}
