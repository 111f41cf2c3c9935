/**
 * An unbounded single-consumer queue that turns pushed values into an async iterator; used to hand
 * store changes to a watcher. `fail` ends the iteration with an error, `close` ends it normally.
 */
export class AsyncQueue<T> implements AsyncIterableIterator<T> {
  #items: T[] = [];
  #waiting: ((result: IteratorResult<T>) => void) | undefined;
  #failWaiting: ((error: Error) => void) | undefined;
  #done = false;
  #error: Error | undefined;

  push(item: T): void {
    if (this.#done) return;
    const resolve = this.#waiting;
    if (resolve !== undefined) {
      this.#clearWaiter();
      resolve({ value: item, done: false });
    } else {
      this.#items.push(item);
    }
  }

  close(): void {
    this.#done = true;
    const resolve = this.#waiting;
    this.#clearWaiter();
    resolve?.({ value: undefined, done: true });
  }

  fail(error: Error): void {
    if (this.#done) return;
    this.#done = true;
    this.#error = error;
    const reject = this.#failWaiting;
    this.#clearWaiter();
    reject?.(error);
  }

  next(): Promise<IteratorResult<T>> {
    const item = this.#items.shift();
    if (item !== undefined) return Promise.resolve({ value: item, done: false });
    if (this.#error !== undefined) return Promise.reject(this.#error);
    if (this.#done) return Promise.resolve({ value: undefined, done: true });
    return new Promise((resolve, reject) => {
      this.#waiting = resolve;
      this.#failWaiting = reject;
    });
  }

  return(): Promise<IteratorResult<T>> {
    this.close();
    this.#items = [];
    return Promise.resolve({ value: undefined, done: true });
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<T> {
    return this;
  }

  #clearWaiter(): void {
    this.#waiting = undefined;
    this.#failWaiting = undefined;
  }
}
