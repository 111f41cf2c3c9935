export { TideError, hasCode, toError } from './errors.ts';
export { raceAbort, throwIfAborted } from './abort.ts';
export { SecretValue, scrubSecrets, redactUrlCredentials, redactUrlCredentialsDeep } from './secret.ts';
export { createLogger, silentLogger, type Logger, type LoggerOptions } from './logger.ts';
export { parseQuantity, formatBytes } from './quantity.ts';
export { allocatePageStarted } from './page-buffer.ts';
export { TokenBucket } from './token-bucket.ts';
