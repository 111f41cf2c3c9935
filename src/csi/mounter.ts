import { execFile } from 'node:child_process';
import { CsiError } from './errors.ts';

/** The mount operations of the plugin; util-linux mount(8) and umount(8) in production. */
export interface Mounter {
  /** Bind-mounts `source` on `target`, then remounts it read-only when asked. */
  bind(source: string, target: string, options: { readOnly: boolean; signal?: AbortSignal }): Promise<void>;
  /** Unmounts the top mount at `target`; `lazy` detaches it even while files on it are open. */
  unmount(target: string, options: { lazy: boolean; signal?: AbortSignal }): Promise<void>;
}

const COMMAND_TIMEOUT_MS = 30_000;

function run(command: string, args: readonly string[], signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile(
      command,
      args,
      { timeout: COMMAND_TIMEOUT_MS, ...(signal === undefined ? {} : { signal }) },
      (error, _stdout, stderr) => {
        if (error === null) {
          resolve();
          return;
        }
        const detail = stderr.trim() || error.message;
        reject(
          new CsiError('ERR_CSI_INTERNAL', `${command} ${args.join(' ')} failed: ${detail}`, {
            cause: error,
          }),
        );
      },
    );
  });
}

/** mount(8) and umount(8) as child processes: no native addon, and the kernel's answer in their message. */
export function utilLinuxMounter(): Mounter {
  return {
    async bind(source, target, { readOnly, signal }) {
      await run('mount', ['--bind', source, target], signal);
      // A bind mount takes its source's flags; read-only needs a second, remounting call (mount(2)).
      if (readOnly) {
        try {
          await run('mount', ['-o', 'remount,bind,ro', target], signal);
        } catch (error) {
          await run('umount', [target], signal).catch(() => undefined);
          throw error;
        }
      }
    },
    async unmount(target, { lazy, signal }) {
      await run('umount', lazy ? ['-l', target] : [target], signal);
    },
  };
}
