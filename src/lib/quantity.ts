/**
 * Kubernetes resource quantities (`2Gi`, `500M`, `1.5G`, `100`), the format of tier quotas and of
 * PVC sizes. Only the binary and decimal SI suffixes that make sense for bytes are accepted.
 */
const MULTIPLIERS: Record<string, number> = {
  '': 1,
  k: 1e3,
  K: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
  P: 1e15,
  E: 1e18,
  Ki: 2 ** 10,
  Mi: 2 ** 20,
  Gi: 2 ** 30,
  Ti: 2 ** 40,
  Pi: 2 ** 50,
  Ei: 2 ** 60,
};

const QUANTITY = /^(\d+(?:\.\d+)?|\.\d+)(Ki|Mi|Gi|Ti|Pi|Ei|k|K|M|G|T|P|E)?$/;

/** The byte count of a quantity string, or undefined when it is not a valid quantity. */
export function parseQuantity(text: string): number | undefined {
  const match = QUANTITY.exec(text.trim());
  if (match === null) return undefined;
  const multiplier = MULTIPLIERS[match[2] ?? ''];
  if (multiplier === undefined) return undefined;
  return Math.round(Number(match[1]) * multiplier);
}

const BINARY_UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB', 'EiB'];

/** Formats a byte count as Fluid prints sizes: `545.32MiB`, `0.00B`, `2.00GiB`. */
export function formatBytes(sizeBytes: number): string {
  let value = sizeBytes;
  let unit = 0;
  while (Math.abs(value) >= 1024 && unit < BINARY_UNITS.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value.toFixed(2)}${BINARY_UNITS[unit] ?? 'B'}`;
}
