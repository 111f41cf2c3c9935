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

const URL_USER_INFO = /([a-zA-Z][a-zA-Z0-9+.-]*:\/\/)[^/\s@"'<>\\]+@/g;

/**
 * Replaces the user info of every URL in a text (`https://user:pass@host/` →
 * `https://[REDACTED]@host/`): what a mount point may carry, wherever it is shown or logged.
 */
export function redactUrlCredentials(text: string): string {
  return text.replace(URL_USER_INFO, `$1${REDACTED}@`);
}

/** A copy of a JSON-like value with `redactUrlCredentials` applied to every string in it. */
export function redactUrlCredentialsDeep<T>(value: T): T {
  if (typeof value === 'string') return redactUrlCredentials(value) as T;
  if (Array.isArray(value)) return value.map((item: unknown) => redactUrlCredentialsDeep(item)) as T;
  if (typeof value === 'object' && value !== null) {
    return Object.fromEntries(
      Object.entries(value).map(([key, item]) => [key, redactUrlCredentialsDeep(item)]),
    ) as T;
  }
  return value;
}
