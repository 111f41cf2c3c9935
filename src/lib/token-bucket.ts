import { setTimeout as sleep } from 'node:timers/promises';

/**
 * A rate (bytes, requests) as a token bucket refilled continuously, holding one second's worth:
 * bursts up to the rate pass at once, more waits. A take beyond what is there borrows ahead, so
 * that the takers after it wait for it; concurrent takers are served in the order they came.
 */
export class TokenBucket {
  readonly #perSecond: number;
  #available: number;
  #lastMs = Date.now();

  constructor(perSecond: number) {
    this.#perSecond = perSecond;
    this.#available = perSecond;
  }

  /**
   * Waits until `units` may be spent. On abort it rejects with what `onAbort` makes of the signal
   * (by default its reason); the units stay spent.
   */
  async take(
    units: number,
    signal?: AbortSignal,
    onAbort: (signal: AbortSignal) => unknown = (aborted) => aborted.reason,
  ): Promise<void> {
    const now = Date.now();
    this.#available = Math.min(
      this.#perSecond,
      this.#available + ((now - this.#lastMs) / 1000) * this.#perSecond,
    );
    this.#lastMs = now;
    this.#available -= units;
    if (this.#available >= 0) return;
    try {
      await sleep(
        (-this.#available / this.#perSecond) * 1000,
        undefined,
        signal === undefined ? {} : { signal },
      );
    } catch (error) {
      if (signal?.aborted !== true) throw error;
      const reason = onAbort(signal);
      throw reason instanceof Error ? reason : new Error(String(reason));
    }
  }
}
