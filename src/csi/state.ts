import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CsiError } from './errors.ts';
import type { VolumeAttributes } from './volume-context.ts';

/** A target the plugin has bind-mounted, as recovery needs it after a restart of the plugin. */
export interface PublishedTarget {
  volumeId: string;
  readOnly: boolean;
  attributes: VolumeAttributes;
}

interface StateFile {
  /** Staged volumes: NodeUnstageVolume carries no volume context, so the plugin keeps it from Stage. */
  volumes: Record<string, VolumeAttributes>;
  targets: Record<string, PublishedTarget>;
}

/**
 * The plugin's memory of staged volumes and published targets, in one JSON file replaced
 * atomically on each change, so that a restarted plugin (a DaemonSet rollout) still unstages by
 * cleanPolicy and still recovers the binds it made.
 */
export class PluginState {
  readonly #path: string;
  readonly #volumes = new Map<string, VolumeAttributes>();
  readonly #targets = new Map<string, PublishedTarget>();
  #writing: Promise<void> = Promise.resolve();

  private constructor(path: string) {
    this.#path = path;
  }

  /** Loads `<dir>/state.json` (an empty state when it does not exist). */
  static async open(dir: string): Promise<PluginState> {
    const state = new PluginState(join(dir, 'state.json'));
    try {
      await mkdir(dir, { recursive: true, mode: 0o700 });
      const text = await readFile(state.#path, 'utf8').catch((error: unknown) => {
        if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
        throw error;
      });
      if (text !== undefined) {
        const parsed = JSON.parse(text) as Partial<StateFile>;
        for (const [id, attributes] of Object.entries(parsed.volumes ?? {}))
          state.#volumes.set(id, attributes);
        for (const [path, target] of Object.entries(parsed.targets ?? {})) state.#targets.set(path, target);
      }
    } catch (error) {
      throw new CsiError('ERR_CSI_INTERNAL', `Cannot read the plugin state in ${dir}`, { cause: error });
    }
    return state;
  }

  volume(volumeId: string): VolumeAttributes | undefined {
    return this.#volumes.get(volumeId);
  }

  targets(): [string, PublishedTarget][] {
    return [...this.#targets];
  }

  target(path: string): PublishedTarget | undefined {
    return this.#targets.get(path);
  }

  async setVolume(volumeId: string, attributes: VolumeAttributes | undefined): Promise<void> {
    if (attributes === undefined) this.#volumes.delete(volumeId);
    else this.#volumes.set(volumeId, attributes);
    await this.#save();
  }

  async setTarget(path: string, target: PublishedTarget | undefined): Promise<void> {
    if (target === undefined) this.#targets.delete(path);
    else this.#targets.set(path, target);
    await this.#save();
  }

  /** Writes are queued so that two changes never interleave their temporary files. */
  #save(): Promise<void> {
    const file: StateFile = {
      volumes: Object.fromEntries(this.#volumes),
      targets: Object.fromEntries(this.#targets),
    };
    const text = JSON.stringify(file);
    this.#writing = this.#writing
      .catch(() => undefined)
      .then(async () => {
        const temporary = `${this.#path}.tmp`;
        await writeFile(temporary, text, { mode: 0o600 });
        await rename(temporary, this.#path);
      });
    return this.#writing.catch((error: unknown) => {
      throw new CsiError('ERR_CSI_INTERNAL', `Cannot write the plugin state ${this.#path}`, { cause: error });
    });
  }
}
