import { resolve } from 'node:path';
import { Command, CommanderError, Option } from 'commander';
import { CsiError } from './errors.ts';
import { DRIVER_NAME } from './plugin.ts';

export { CommanderError };

/** The node plugin's flags, parsed once and frozen. */
export interface CsiConfig {
  endpoint: string;
  nodeId: string;
  /** A kubeconfig file; undefined: the in-cluster service account when in a pod, else no cluster. */
  kubeconfig: string | undefined;
  kubeletDir: string;
  mountRoot: string;
  /** Undefined with `--registration-dir ''`: no kubelet registration. */
  registrationDir: string | undefined;
  stateDir: string;
  driverName: string;
  recoveryIntervalMs: number;
  fuseWaitTimeoutMs: number;
  logLevel: 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal' | 'silent';
}

const LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;

interface RawOptions {
  endpoint?: string;
  nodeId?: string;
  kubeconfig?: string;
  kubeletDir: string;
  mountRoot: string;
  registrationDir?: string;
  stateDir?: string;
  driverName: string;
  recoveryIntervalSeconds: string;
  fuseTimeoutSeconds: string;
  logLevel: CsiConfig['logLevel'];
}

function positiveSeconds(name: string, text: string): number {
  const value = Number(text);
  if (!Number.isFinite(value) || value <= 0) {
    throw new CsiError(
      'ERR_CSI_BAD_FLAGS',
      `Cannot use --${name} as it must be a positive number: current value is ${text}`,
    );
  }
  return value * 1000;
}

/**
 * Parses the plugin's command line (`node src/csi/main.ts --help`).
 * @throws {CsiError} ERR_CSI_BAD_FLAGS for a value it cannot run with
 * @throws {CommanderError} for unknown flags and `--help` (code `commander.helpDisplayed`)
 */
export function parseCsiArgs(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): CsiConfig {
  const program = new Command('tide-csi')
    .description("Tide's CSI node plugin: publishes datasets' FUSE mounts into pods")
    .exitOverride()
    .configureOutput({
      writeOut: (text) => process.stdout.write(text),
      writeErr: (text) => process.stderr.write(text),
    })
    .option('--endpoint <unix-url>', 'CSI socket, unix:///path/csi.sock (default $CSI_ENDPOINT)')
    .option('--node-id <name>', "this node's name (default $NODE_NAME)")
    .option('--kubeconfig <path>', 'kubeconfig file (default: the service account in a pod, else no cluster)')
    .option(
      '--kubelet-dir <dir>',
      "the kubelet's directory; targets outside it are refused",
      '/var/lib/kubelet',
    )
    .option(
      '--mount-root <dir>',
      "the FUSE pods' mount root; a fluid_path outside it is refused",
      '/runtime-mnt',
    )
    .option(
      '--registration-dir <dir>',
      "the kubelet's plugin registry ('' for none; default <kubelet-dir>/plugins_registry)",
    )
    .option('--state-dir <dir>', "the plugin's state (default <kubelet-dir>/plugins/<driver>)")
    .option('--driver-name <name>', 'CSI driver name', DRIVER_NAME)
    .option(
      '--recovery-interval-seconds <s>',
      'how often published binds are checked against the FUSE mounts',
      '3',
    )
    .option('--fuse-timeout-seconds <s>', 'how long NodePublishVolume waits for the FUSE mount', '90')
    .addOption(new Option('--log-level <level>', 'pino log level').choices(LEVELS).default('info'));
  program.parse([...argv], { from: 'user' });
  const raw = program.opts<RawOptions>();
  const endpoint = raw.endpoint ?? env['CSI_ENDPOINT'];
  if (endpoint === undefined || endpoint === '')
    throw new CsiError('ERR_CSI_BAD_FLAGS', '--endpoint is required');
  const nodeId = raw.nodeId ?? env['NODE_NAME'];
  if (nodeId === undefined || nodeId === '') {
    throw new CsiError('ERR_CSI_BAD_FLAGS', '--node-id is required (or NODE_NAME from the downward API)');
  }
  const kubeletDir = resolve(raw.kubeletDir);
  const registrationDir = raw.registrationDir ?? `${kubeletDir}/plugins_registry`;
  return Object.freeze({
    endpoint,
    nodeId,
    kubeconfig: raw.kubeconfig,
    kubeletDir,
    mountRoot: resolve(raw.mountRoot),
    registrationDir: registrationDir === '' ? undefined : resolve(registrationDir),
    stateDir: resolve(raw.stateDir ?? `${kubeletDir}/plugins/${raw.driverName}`),
    driverName: raw.driverName,
    recoveryIntervalMs: positiveSeconds('recovery-interval-seconds', raw.recoveryIntervalSeconds),
    fuseWaitTimeoutMs: positiveSeconds('fuse-timeout-seconds', raw.fuseTimeoutSeconds),
    logLevel: raw.logLevel,
  });
}
