import { cacheAborted } from './errors.ts';

/** A counting semaphore whose waiters leave the queue when their signal aborts. */
export class Semaphore {
  readonly #limit: number;
  #active = 0;
  readonly #queue: { grant: () => void; reject: (error: Error) => void }[] = [];

  constructor(limit: number) {
    if (!Number.isSafeInteger(limit) || limit < 1) {
      throw new RangeError(`Cannot limit concurrency to ${limit}: it must be a positive integer`);
    }
    this.#limit = limit;
  }

  get active(): number {
    return this.#active;
  }

  /** Waits for a slot; call the returned function exactly once to give it back. */
  async acquire(signal?: AbortSignal): Promise<() => void> {
    if (signal?.aborted === true) throw cacheAborted(signal, 'waiting for a slot');
    if (this.#active < this.#limit) {
      this.#active += 1;
      return this.#releaser();
    }
    await new Promise<void>((resolve, reject) => {
      const waiter = {
        grant: () => {
          signal?.removeEventListener('abort', onAbort);
          resolve();
        },
        reject,
      };
      const onAbort = (): void => {
        const at = this.#queue.indexOf(waiter);
        if (at !== -1) this.#queue.splice(at, 1);
        reject(cacheAborted(signal as AbortSignal, 'waiting for a slot'));
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#queue.push(waiter);
    });
    return this.#releaser();
  }

  #releaser(): () => void {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.#queue.shift();
      // The slot passes straight to the next waiter, so `active` stays the same.
      if (next !== undefined) next.grant();
      else this.#active -= 1;
    };
  }
}
