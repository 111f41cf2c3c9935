import type { Level, MediumType } from '../api/index.ts';
import { parseQuantity } from '../lib/index.ts';
import { CacheError } from './errors.ts';

/** One directory of a tier with its share of the tier's quota. */
export interface TierDirConfig {
  path: string;
  capacityBytes: number;
}

/** A tier of the block store, parsed from a runtime's `tieredstore.levels[]` entry. */
export interface TierConfig {
  medium: MediumType;
  dirs: readonly TierDirConfig[];
  /** Above `highRatio × capacity` the tier evicts in the background down to `lowRatio × capacity`. */
  highRatio: number;
  lowRatio: number;
}

/** Alluxio's defaults, which Fluid leaves in place when a level sets no watermarks. */
export const DEFAULT_HIGH_RATIO = 0.95;
export const DEFAULT_LOW_RATIO = 0.7;
/** Where a MEM level keeps its block files when it names no path: shared memory (tmpfs). */
export const DEFAULT_MEM_PATH = '/dev/shm';

const MEDIUM_RANK: Record<MediumType, number> = { MEM: 0, SSD: 1, HDD: 2 };

/**
 * Turns `tieredstore.levels[]` into tier configurations, fastest first. `quota` is split evenly over
 * the level's comma-separated paths; `quotaList` gives one quota per path (as Fluid's Alluxio engine).
 * @throws {CacheError} ERR_CACHE_BAD_CONFIG naming the level and the field
 */
export function tiersFromLevels(levels: readonly Level[]): TierConfig[] {
  if (levels.length === 0) {
    throw new CacheError('ERR_CACHE_BAD_CONFIG', 'Cannot build a block store as tieredstore has no levels');
  }
  const tiers = levels.map((level, index) => tierFromLevel(level, index));
  const seen = new Set<string>();
  for (const tier of tiers) {
    for (const dir of tier.dirs) {
      if (seen.has(dir.path)) {
        throw new CacheError(
          'ERR_CACHE_BAD_CONFIG',
          `Cannot use the directory "${dir.path}" twice in tieredstore.levels`,
        );
      }
      seen.add(dir.path);
    }
  }
  return tiers.sort((a, b) => MEDIUM_RANK[a.medium] - MEDIUM_RANK[b.medium]);
}

function tierFromLevel(level: Level, index: number): TierConfig {
  const where = `tieredstore.levels[${index}] (${level.mediumtype})`;
  const fail = (message: string): never => {
    throw new CacheError('ERR_CACHE_BAD_CONFIG', `Cannot use ${where}: ${message}`);
  };
  const pathText = level.path ?? (level.mediumtype === 'MEM' ? DEFAULT_MEM_PATH : fail('path is missing'));
  const paths = pathText
    .split(',')
    .map((path) => path.trim())
    .filter((path) => path !== '');
  if (paths.length === 0) fail('path names no directory');
  for (const path of paths) if (!path.startsWith('/')) fail(`path "${path}" is not absolute`);

  let capacities: number[];
  if (level.quotaList !== undefined && level.quotaList !== '') {
    const quotas = level.quotaList.split(',').map((text) => text.trim());
    if (quotas.length !== paths.length) {
      fail(`quotaList has ${quotas.length} quotas for ${paths.length} paths`);
    }
    capacities = quotas.map(
      (text) => parseQuantity(text) ?? fail(`quotaList entry "${text}" is not a quantity`),
    );
  } else if (level.quota !== undefined) {
    const quota = level.quota;
    const total =
      typeof quota === 'number'
        ? quota
        : (parseQuantity(quota) ?? fail(`quota "${quota}" is not a quantity`));
    capacities = paths.map(() => Math.floor(total / paths.length));
  } else {
    capacities = fail('quota or quotaList is required');
  }
  for (const capacity of capacities) if (capacity <= 0) fail('every quota must be positive');

  const highRatio =
    parseRatio(level.high, DEFAULT_HIGH_RATIO) ?? fail(`high "${level.high ?? ''}" is not a ratio`);
  const lowRatio =
    parseRatio(level.low, DEFAULT_LOW_RATIO) ?? fail(`low "${level.low ?? ''}" is not a ratio`);
  if (!(lowRatio < highRatio)) fail(`low (${lowRatio}) must be below high (${highRatio})`);

  return {
    medium: level.mediumtype,
    dirs: paths.map((path, i) => ({ path, capacityBytes: capacities[i] ?? 0 })),
    highRatio,
    lowRatio,
  };
}

function parseRatio(text: string | undefined, fallback: number): number | undefined {
  if (text === undefined || text.trim() === '') return fallback;
  const value = Number(text);
  return Number.isFinite(value) && value > 0 && value <= 1 ? value : undefined;
}
