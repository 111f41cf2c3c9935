import type { FieldError } from './errors.ts';
import { LIMITS } from './limits.ts';

/** Files loaded at once unless `options.parallelism` says otherwise: small files are latency-bound. */
export const DEFAULT_LOAD_PARALLELISM = 16;

/** The DataLoad `options` Tide reads, parsed. */
export interface DataLoadOptions {
  parallelism: number;
  /** Cap on bytes per second read from the origin; undefined for none. */
  bandwidthBytesPerSecond?: number;
}

/** `100M`, `50Mi`, `10MB/s`, `1048576` (bytes per second), or undefined when it is none of these. */
export function parseBandwidth(text: string): number | undefined {
  const match = /^(\d+(?:\.\d+)?)\s*(Ki|Mi|Gi|K|M|G)?(?:B)?(?:\/s)?$/.exec(text.trim());
  if (match === null) return undefined;
  const unit = { Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, K: 1e3, M: 1e6, G: 1e9 }[match[2] ?? ''] ?? 1;
  const bytes = Math.round(Number(match[1]) * unit);
  return bytes > 0 ? bytes : undefined;
}

/**
 * Reads `parallelism` and `bandwidth` (or Fluid's `bandwidthLimit`) from a DataLoad's options.
 * A value that does not parse is an error, never dropped: a load silently unthrottled is worse
 * than a load refused.
 */
export function dataLoadOptionsOf(
  options: Readonly<Record<string, string>> | undefined,
): { ok: true; value: DataLoadOptions } | { ok: false; errors: FieldError[] } {
  const errors: FieldError[] = [];
  const value: DataLoadOptions = { parallelism: DEFAULT_LOAD_PARALLELISM };
  const parallelism = options?.['parallelism'];
  if (parallelism !== undefined) {
    const count = /^\s*\d+\s*$/.test(parallelism) ? Number(parallelism) : Number.NaN;
    if (!Number.isSafeInteger(count) || count < 1 || count > LIMITS.loadParallelism) {
      errors.push({
        path: '/spec/options/parallelism',
        message: `must be a whole number of files from 1 to ${LIMITS.loadParallelism}, got "${parallelism}"`,
      });
    } else {
      value.parallelism = count;
    }
  }
  for (const name of ['bandwidth', 'bandwidthLimit'] as const) {
    const text = options?.[name];
    if (text === undefined) continue;
    const bytes = parseBandwidth(text);
    if (bytes === undefined) {
      errors.push({
        path: `/spec/options/${name}`,
        message: `must be bytes per second such as 100M, 50Mi or 10MB/s, got "${text}"`,
      });
    } else {
      value.bandwidthBytesPerSecond = Math.min(value.bandwidthBytesPerSecond ?? bytes, bytes);
    }
  }
  return errors.length === 0 ? { ok: true, value } : { ok: false, errors };
}
