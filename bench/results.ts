/** Every figure the harness records, per system and metric, one sample per round. */
export class Results {
  readonly #samples = new Map<string, Map<string, number[]>>();
  readonly #notes = new Map<string, string[]>();

  record(system: string, metric: string, value: number): void {
    if (!Number.isFinite(value)) return;
    let metrics = this.#samples.get(system);
    if (metrics === undefined) {
      metrics = new Map();
      this.#samples.set(system, metrics);
    }
    const values = metrics.get(metric) ?? [];
    values.push(value);
    metrics.set(metric, values);
  }

  samples(system: string, metric: string): readonly number[] {
    return this.#samples.get(system)?.get(metric) ?? [];
  }

  /** A note about a system (why it is not available, a failed round), shown in the report. */
  note(system: string, text: string): void {
    const notes = this.#notes.get(system) ?? [];
    if (!notes.includes(text)) notes.push(text);
    this.#notes.set(system, notes);
  }

  notes(system: string): readonly string[] {
    return this.#notes.get(system) ?? [];
  }

  toJSON(): { samples: Record<string, Record<string, number[]>>; notes: Record<string, string[]> } {
    return {
      samples: Object.fromEntries(
        [...this.#samples].map(([system, metrics]) => [system, Object.fromEntries(metrics)]),
      ),
      notes: Object.fromEntries(this.#notes),
    };
  }
}

export interface Summary {
  median: number;
  min: number;
  max: number;
  count: number;
}

export function summarize(values: readonly number[]): Summary | undefined {
  if (values.length === 0) return undefined;
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  const median = sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
  return { median, min: sorted[0]!, max: sorted[sorted.length - 1]!, count: sorted.length };
}

export function median(values: readonly number[]): number {
  return summarize(values)?.median ?? Number.NaN;
}
