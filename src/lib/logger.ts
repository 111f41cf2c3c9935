import { pino, type DestinationStream, type Logger, type LevelWithSilent } from 'pino';
import { redactUrlCredentials } from './secret.ts';

export type { Logger } from 'pino';

/** Field names that hold credentials wherever they appear in a log record. */
const REDACT_PATHS = [
  '*.password',
  '*.secret',
  '*.token',
  '*.authorization',
  '*.accessKeySecret',
  '*.secretAccessKey',
  '*.sessionToken',
  'headers.authorization',
  'req.headers.authorization',
];

export interface LoggerOptions {
  /** Minimum level written; default `info`. */
  level?: LevelWithSilent;
  /** Where JSON lines go; default standard error, so that stdout stays for command output. */
  destination?: DestinationStream;
}

/**
 * Creates the process-wide JSON logger. Components take `logger.child({ component: 'ufs' })`.
 * Secrets are kept out by construction (see SecretValue); the redact list is a second line of defence.
 */
export function createLogger(options: LoggerOptions = {}): Logger {
  const destination = options.destination ?? pino.destination(2);
  return pino(
    {
      level: options.level ?? 'info',
      redact: { paths: REDACT_PATHS, censor: '[REDACTED]' },
      base: { pid: process.pid },
    },
    // Each line once more, for URLs with user info in any field or message (a mount point).
    {
      write: (line: string) => {
        destination.write(redactUrlCredentials(line));
      },
    },
  );
}

/** A logger that drops everything, for tests and library callers that pass none. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
