import type { Logger } from '../lib/index.ts';

/** What a reconcile asks of the queue: nothing, or to run again after a delay (level-triggered resync). */
export type ReconcileResult = { requeueAfterMs?: number } | undefined;

export interface WorkQueueOptions {
  reconcile: (key: string, signal: AbortSignal) => Promise<ReconcileResult>;
  logger: Logger;
  /** Keys reconciled at once; one key is never reconciled twice concurrently. */
  concurrency?: number;
  /** First retry delay after a failure; doubles per consecutive failure of that key. */
  baseDelayMs?: number;
  maxDelayMs?: number;
  /** Random extra delay as a fraction of the delay, so requeues of many keys spread out. */
  jitterRatio?: number;
}

/**
 * A keyed, deduplicated work queue with per-key exponential backoff, in the manner of client-go's
 * rate-limited queue: adding a key that is queued does nothing; adding a key that is being
 * reconciled runs it once more afterwards.
 */
export class WorkQueue {
  readonly #options: Required<Omit<WorkQueueOptions, 'logger'>> & { logger: Logger };
  readonly #queued = new Set<string>();
  readonly #order: string[] = [];
  readonly #active = new Set<string>();
  readonly #dirty = new Set<string>();
  readonly #failures = new Map<string, number>();
  readonly #timers = new Map<string, { timer: NodeJS.Timeout; dueMs: number }>();
  readonly #abort = new AbortController();
  readonly #idleWaiters: (() => void)[] = [];
  #stopped = false;

  constructor(options: WorkQueueOptions) {
    this.#options = {
      concurrency: 2,
      baseDelayMs: 200,
      maxDelayMs: 60_000,
      jitterRatio: 0.1,
      ...options,
    };
  }

  add(key: string): void {
    if (this.#stopped) return;
    if (this.#active.has(key)) {
      this.#dirty.add(key);
      return;
    }
    if (this.#queued.has(key)) return;
    this.#queued.add(key);
    this.#order.push(key);
    this.#pump();
  }

  /** Adds the key after `delayMs`; an earlier pending delay for the key wins. */
  addAfter(key: string, delayMs: number): void {
    if (this.#stopped) return;
    const jittered = delayMs * (1 + Math.random() * this.#options.jitterRatio);
    const dueMs = Date.now() + jittered;
    const pending = this.#timers.get(key);
    if (pending !== undefined) {
      if (pending.dueMs <= dueMs) return;
      clearTimeout(pending.timer);
    }
    const timer = setTimeout(() => {
      this.#timers.delete(key);
      this.add(key);
    }, jittered);
    timer.unref();
    this.#timers.set(key, { timer, dueMs });
  }

  /** Resolves when nothing is queued or running (timers may still be pending). */
  idle(): Promise<void> {
    if (this.#order.length === 0 && this.#active.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idleWaiters.push(resolve));
  }

  /** Stops taking work, aborts running reconciles and resolves once they have returned. */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.#abort.abort();
    for (const { timer } of this.#timers.values()) clearTimeout(timer);
    this.#timers.clear();
    this.#order.length = 0;
    this.#queued.clear();
    await this.idle();
  }

  #pump(): void {
    while (!this.#stopped && this.#active.size < this.#options.concurrency) {
      const index = this.#order.findIndex((key) => !this.#active.has(key));
      if (index < 0) break;
      const [key] = this.#order.splice(index, 1);
      if (key === undefined) break;
      this.#queued.delete(key);
      this.#active.add(key);
      void this.#run(key);
    }
    if (this.#order.length === 0 && this.#active.size === 0) {
      for (const resolve of this.#idleWaiters.splice(0)) resolve();
    }
  }

  async #run(key: string): Promise<void> {
    const { logger } = this.#options;
    try {
      const result = await this.#options.reconcile(key, this.#abort.signal);
      this.#failures.delete(key);
      if (result?.requeueAfterMs !== undefined) this.addAfter(key, result.requeueAfterMs);
    } catch (error) {
      const failures = (this.#failures.get(key) ?? 0) + 1;
      this.#failures.set(key, failures);
      const delayMs = Math.min(this.#options.baseDelayMs * 2 ** (failures - 1), this.#options.maxDelayMs);
      if (!this.#stopped) logger.warn({ key, err: error, retryInMs: delayMs }, 'reconcile failed');
      this.addAfter(key, delayMs);
    } finally {
      this.#active.delete(key);
      if (this.#dirty.delete(key)) this.add(key);
      this.#pump();
    }
  }
}
