/** Exit codes of the `tide` command; documented in README.md. */
export const ExitCode = {
  ok: 0,
  /** The request was valid but failed (remote error, timeout, conflict). */
  failed: 1,
  /** Bad usage or an invalid manifest: nothing was changed. */
  invalid: 2,
  /** The named resource does not exist. */
  notFound: 3,
  /** The control plane (embedded daemon or cluster) could not be reached. */
  unreachable: 4,
} as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];
