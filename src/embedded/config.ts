import { createConnection } from 'node:net';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';

/** Where the embedded control plane keeps its state, sockets, logs and mounts. */
export interface EmbeddedConfig {
  /** `$TIDE_HOME`, default `~/.tide`. */
  home: string;
  /** The SQLite database of resources. */
  databasePath: string;
  /** The Unix socket of the daemon's API. */
  socketPath: string;
  pidPath: string;
  logPath: string;
  /** Per-dataset run state: process records, configurations, membership. */
  runDir: string;
  /** Default root of SSD/HDD cache tiers when a runtime names none. */
  cacheDir: string;
  /** `$TIDE_MOUNT_ROOT`, default `$TIDE_HOME/mnt`: datasets mount at `<root>/<namespace>/<name>`. */
  mountRoot: string;
  /** Directory behind `pvc://name/sub` mount points. */
  pvcRoot: string;
  /**
   * Node's compile cache for the daemon and the processes it starts (`NODE_COMPILE_CACHE`): each
   * worker and mount process would otherwise strip types and compile every module again.
   */
  compileCacheDir: string;
  /**
   * `TIDE_ALLOW_OTHER=1`: manifests may mount datasets with `allow_other`, so that every user of
   * the machine sees them. Off by default: the daemon's user decides, not whoever writes a manifest.
   */
  allowOther: boolean;
}

/** Reads the environment once, at start, into a frozen configuration. */
export function embeddedConfigFrom(env: NodeJS.ProcessEnv): EmbeddedConfig {
  const home = resolve(env['TIDE_HOME'] ?? join(homedir(), '.tide'));
  return Object.freeze({
    home,
    databasePath: join(home, 'state.db'),
    socketPath: join(home, 'tide.sock'),
    pidPath: join(home, 'tide.pid'),
    logPath: join(home, 'logs', 'daemon.log'),
    runDir: join(home, 'run'),
    cacheDir: join(home, 'cache'),
    mountRoot: resolve(env['TIDE_MOUNT_ROOT'] ?? join(home, 'mnt')),
    pvcRoot: resolve(env['TIDE_PVC_ROOT'] ?? join(home, 'pvc')),
    // Per user, not per home: compiled code depends only on the sources and Node's version.
    compileCacheDir: resolve(
      env['NODE_COMPILE_CACHE'] ?? join(env['XDG_CACHE_HOME'] ?? join(homedir(), '.cache'), 'tide', 'node'),
    ),
    allowOther: env['TIDE_ALLOW_OTHER'] === '1',
  });
}

/** Whether something accepts connections on the Unix socket. */
export function socketAnswers(socketPath: string, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection(socketPath);
    const timer = setTimeout(() => {
      socket.destroy();
      resolve(false);
    }, timeoutMs);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.end();
      resolve(true);
    });
    socket.once('error', () => {
      clearTimeout(timer);
      resolve(false);
    });
  });
}
