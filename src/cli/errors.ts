import { TideError } from '../lib/index.ts';
import { ExitCode } from './exit-codes.ts';

export type CliErrorCode =
  | 'ERR_CLI_USAGE'
  | 'ERR_CLI_INPUT'
  | 'ERR_DAEMON_UNAVAILABLE'
  | 'ERR_DAEMON_REQUEST'
  | 'ERR_DAEMON_START'
  | 'ERR_TIMEOUT';

/** An error the CLI reports as one line and turns into an exit code. */
export class CliError extends TideError<CliErrorCode> {
  readonly exitCode: ExitCode;
  /** For an object the daemon refused: its position in the request and the field at fault. */
  readonly refusedObject: RefusedObject | undefined;

  constructor(
    code: CliErrorCode,
    message: string,
    exitCode: ExitCode,
    options?: ErrorOptions & { refusedObject?: RefusedObject },
  ) {
    super(code, message, options);
    this.exitCode = exitCode;
    this.refusedObject = options?.refusedObject;
  }
}

export interface RefusedObject {
  index: number;
  field: { path: string; message: string };
}

export function usageError(message: string): CliError {
  return new CliError('ERR_CLI_USAGE', message, ExitCode.invalid);
}
