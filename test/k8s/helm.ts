/** Where the Helm binary of scripts/test-deps.d/45-helm.sh is, for the chart tests. */
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

const SCRIPT = join(import.meta.dirname, '..', '..', 'scripts', 'test-deps.d', '45-helm.sh');

/** The pinned version, read from the install script so that the two never disagree. */
export const HELM_VERSION = /^version=(v[\d.]+)$/m.exec(readFileSync(SCRIPT, 'utf8'))?.[1] ?? 'unknown';

/** `$TIDE_HELM`, else the binary the install script builds. */
export function helmPath(): string {
  const peers = process.env['TIDE_PEERS_DIR'] ?? join(homedir(), '.cache', 'tide-peers');
  return process.env['TIDE_HELM'] ?? join(peers, `helm-${HELM_VERSION}`, 'helm');
}

/** Why the chart tests cannot run, or false; never skipped in CI, where .ci/run installs helm. */
export function helmSkipReason(): string | false {
  return existsSync(helmPath()) || (process.env['CI'] ?? '') !== ''
    ? false
    : `helm ${HELM_VERSION} is not installed at ${helmPath()} (scripts/test-deps.d/45-helm.sh builds it with Go)`;
}
