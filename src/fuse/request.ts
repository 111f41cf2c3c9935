// A request in flight: what an operation handler is given, and the table INTERRUPT aborts it through.
import type { InHeader } from './protocol.ts';

export interface Request {
  header: InHeader;
  body: Buffer;
  signal: AbortSignal;
}

export type Handler = (request: Request) => Promise<void> | void;

/** The requests being served, by their `unique`, each with the controller that aborts it. */
export class InFlightRequests {
  readonly #controllers = new Map<bigint, AbortController>();

  /** Registers `unique` and gives the signal its handler watches. */
  begin(unique: bigint): AbortSignal {
    const controller = new AbortController();
    this.#controllers.set(unique, controller);
    return controller.signal;
  }

  end(unique: bigint): void {
    this.#controllers.delete(unique);
  }

  /** FUSE_INTERRUPT: the caller gave up (a signal); its handler's source call is aborted. */
  interrupt(unique: bigint): void {
    this.#controllers.get(unique)?.abort();
  }

  abortAll(): void {
    for (const controller of this.#controllers.values()) controller.abort();
  }
}
