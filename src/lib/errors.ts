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

/**
 * True when `error` is an Error whose `code` is one of `codes`: a TideError's, or the one Node puts
 * on system errors (`ECONNRESET`, `EPIPE`…).
 */
export function hasCode<Code extends string>(
  error: unknown,
  ...codes: readonly [Code, ...Code[]]
): error is Error & { readonly code: Code } {
  if (!(error instanceof Error)) return false;
  const code = (error as { code?: unknown }).code;
  return typeof code === 'string' && (codes as readonly string[]).includes(code);
}

/** Turns anything caught into an Error, so that no non-Error is ever rethrown or logged. */
export function toError(value: unknown): Error {
  if (value instanceof Error) return value;
  return new Error(typeof value === 'string' ? value : JSON.stringify(value));
}
