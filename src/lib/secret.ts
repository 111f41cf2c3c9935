import { inspect } from 'node:util';

const REDACTED = '[REDACTED]';

/**
 * A credential that cannot leak by accident: string conversion, JSON serialisation and
 * `util.inspect` (and so pino and console) all print `[REDACTED]`. Only `reveal()` gives the value,
 * which the code that signs a request or opens a connection calls at the last moment.
 */
export class SecretValue {
  readonly #value: string;

  constructor(value: string) {
    this.#value = value;
  }

  reveal(): string {
    return this.#value;
  }

  toString(): string {
    return REDACTED;
  }

  toJSON(): string {
    return REDACTED;
  }

  [inspect.custom](): string {
    return REDACTED;
  }
}

/** Replaces every occurrence of each secret in `text`, for messages that quote remote answers. */
export function scrubSecrets(text: string, secrets: Iterable<SecretValue>): string {
  let scrubbed = text;
  for (const secret of secrets) {
    const value = secret.reveal();
    if (value.length > 0) scrubbed = scrubbed.split(value).join(REDACTED);
  }
  return scrubbed;
}
