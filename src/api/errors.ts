import { TideError } from '../lib/index.ts';

export type ApiErrorCode = 'ERR_MANIFEST_INVALID' | 'ERR_MANIFEST_READ';

/** One problem in one field of one document: `/spec/mounts/0/mountPoint: is required`. */
export interface FieldError {
  /** JSON pointer to the field, `''` for the whole document. */
  path: string;
  message: string;
}

/** A rejected manifest. `message` is one line per problem, each naming file, document and field. */
export class ManifestError extends TideError<ApiErrorCode> {
  readonly problems: readonly string[];

  constructor(code: ApiErrorCode, problems: readonly string[], options?: ErrorOptions) {
    super(code, problems.join('\n'), options);
    this.problems = problems;
  }
}
