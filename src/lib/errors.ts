/**
 * The root of every error Tide throws on purpose. Callers branch on `code`, never on the message.
 * Each component narrows `Code` to its own closed union of `ERR_*` strings in its `errors.ts`.
 */
export class TideError<Code extends string = string> extends Error {
  readonly code: Code;

  constructor(code: Code, message: string, options?: ErrorOptions) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/** True when `error` is a TideError carrying `code`. */
export function hasCode<Code extends string>(error: unknown, code: Code): error is TideError<Code> {
  return error instanceof TideError && error.code === code;
}

/** Turns anything caught into an Error, so that no non-Error is ever rethrown or logged. */
export function toError(value: unknown): Error {
  if (value instanceof Error) return value;
  return new Error(typeof value === 'string' ? value : JSON.stringify(value));
}
