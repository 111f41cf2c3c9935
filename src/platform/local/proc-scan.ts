import { readdir, readFile, readlink } from 'node:fs/promises';

/** Whether `path` is a mount point of a FUSE filesystem right now (per /proc/self/mountinfo). */
export async function isFuseMounted(path: string): Promise<boolean> {
  const mountinfo = await readFile('/proc/self/mountinfo', 'utf8');
  return mountinfo.split('\n').some((line) => {
    const fields = line.split(' ');
    const separator = fields.indexOf('-');
    return unescapeMountPath(fields[4] ?? '') === path && (fields[separator + 1] ?? '').startsWith('fuse');
  });
}

function unescapeMountPath(text: string): string {
  return text.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8)));
}

/**
 * Processes whose working directory or open files are under `root`, as `pid (command)`: what keeps a
 * dataset in use, as Fluid checks for pods using its PVC. `exclude` names PIDs not to count (ours).
 */
export async function processesUsing(root: string, exclude: ReadonlySet<number>): Promise<string[]> {
  const prefix = root.endsWith('/') ? root : `${root}/`;
  const inside = (target: string): boolean => target === root || target.startsWith(prefix);
  const users: string[] = [];
  for (const entry of await readdir('/proc')) {
    const pid = Number(entry);
    if (!Number.isInteger(pid) || exclude.has(pid)) continue;
    try {
      let using = inside(await readlink(`/proc/${pid}/cwd`));
      if (!using) {
        for (const fd of await readdir(`/proc/${pid}/fd`)) {
          if (inside(await readlink(`/proc/${pid}/fd/${fd}`).catch(() => ''))) {
            using = true;
            break;
          }
        }
      }
      if (using) {
        const command = (await readFile(`/proc/${pid}/comm`, 'utf8')).trim();
        users.push(`pid ${pid} (${command})`);
      }
    } catch {
      // The process ended while we looked, or is not ours to inspect.
    }
  }
  return users;
}
