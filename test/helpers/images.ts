/**
 * Tide's container images for tests, built by images/build (Debian packages and npm, no container
 * engine) once per content hash of their inputs and cached in
 * `${TIDE_IMAGES_CACHE:-~/.cache/tide-images}/<hash>/`.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, existsSync, openSync, readFileSync } from 'node:fs';
import { mkdir, readFile, readdir } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const BUILD_SCRIPT = join(REPO, 'images', 'build');

export type ImageName = 'controller' | 'worker' | 'loader' | 'pause' | 'test';
export const IMAGE_NAMES: readonly ImageName[] = ['controller', 'worker', 'loader', 'pause', 'test'];

export interface BuiltImage {
  /** e.g. tide.local/tide-worker:dev */
  ref: string;
  /** OCI layout tar path */
  archive: string;
}
export interface BuiltImages {
  dir: string;
  images: Record<ImageName, BuiltImage>;
}

/** The repository name of each image; references are `tide.local/<repository>:<tag>`. */
export const IMAGE_REPOSITORIES: Readonly<Record<ImageName, string>> = {
  controller: 'tide-controller',
  worker: 'tide-worker',
  loader: 'tide-loader',
  pause: 'pause',
  test: 'tide-test',
};
const TAG = 'dev';
const PAUSE_TAG = '3';

/** The cache root: `$TIDE_IMAGES_CACHE`, default `~/.cache/tide-images`. */
export function imagesCacheRoot(): string {
  return process.env.TIDE_IMAGES_CACHE ?? join(homedir(), '.cache', 'tide-images');
}

/**
 * Builds the images once per content hash of their inputs (images/build, package-lock.json, src/ without tests,
 * pinned Debian package versions) into ${TIDE_IMAGES_CACHE:-~/.cache/tide-images}/<hash>/; a cache hit costs well
 * under a second. A lock makes concurrent callers wait for one build. Throws with the build log tail on failure.
 *
 * With `only`, just those images are guaranteed built; the record still names every image's
 * reference and archive path (an image built by an earlier call is there too).
 */
export async function ensureImages(
  options: { signal?: AbortSignal; only?: readonly ImageName[] } = {},
): Promise<BuiltImages> {
  const wanted = options.only ?? IMAGE_NAMES;
  const dir = join(imagesCacheRoot(), await inputsHash());
  const result = builtImages(dir);
  if (wanted.every((name) => isBuilt(dir, name))) return result;
  await mkdir(dir, { recursive: true });
  await runBuild(dir, wanted, options.signal);
  const missing = wanted.filter((name) => !isBuilt(dir, name));
  if (missing.length > 0) throw new Error(`images/build left ${missing.join(', ')} unbuilt in ${dir}`);
  return result;
}

/** The references and archive paths of the images in a build directory (built or not). */
export function builtImages(dir: string): BuiltImages {
  const images = Object.fromEntries(
    IMAGE_NAMES.map((name) => {
      const repository = IMAGE_REPOSITORIES[name];
      const tag = name === 'pause' ? PAUSE_TAG : TAG;
      return [name, { ref: `tide.local/${repository}:${tag}`, archive: join(dir, `${repository}.tar`) }];
    }),
  ) as Record<ImageName, BuiltImage>;
  return { dir, images };
}

/** An image is built when images.txt (written after its archive) lists it and the archive exists. */
function isBuilt(dir: string, name: ImageName): boolean {
  let listing: string;
  try {
    listing = readFileSync(join(dir, 'images.txt'), 'utf8');
  } catch {
    return false;
  }
  const line = listing.split('\n').find((l) => l.startsWith(`${name} `));
  const archive = line?.split(' ')[2];
  return archive !== undefined && existsSync(join(dir, archive));
}

/**
 * SHA-256 over the paths and contents of everything an image is made of: the build script, the
 * Debian pins, package.json, package-lock.json and src/ without tests.
 */
export async function inputsHash(): Promise<string> {
  const sources = (await readdir(join(REPO, 'src'), { recursive: true, withFileTypes: true }))
    .filter((entry) => entry.isFile() && !entry.name.endsWith('.test.ts'))
    .map((entry) => relative(REPO, join(entry.parentPath, entry.name)));
  const files = [
    'images/build',
    'images/debian.lock',
    'package.json',
    'package-lock.json',
    ...sources,
  ].sort();
  const hash = createHash('sha256');
  for (const file of files) {
    const content = await readFile(join(REPO, file));
    hash.update(`${file}\0${createHash('sha256').update(content).digest('hex')}\n`);
  }
  return hash.digest('hex').slice(0, 16);
}

/** Runs images/build for the missing images; it holds a lock on `dir`, so a second caller waits. */
async function runBuild(
  dir: string,
  wanted: readonly ImageName[],
  signal: AbortSignal | undefined,
): Promise<void> {
  signal?.throwIfAborted();
  const logPath = join(dir, 'build.log');
  const log = openSync(logPath, 'a');
  try {
    const child = spawn('bash', [BUILD_SCRIPT, dir, '--only', wanted.join(','), '--if-missing'], {
      stdio: ['ignore', log, log],
      // Its own process group, so an abort stops mmdebstrap and npm too.
      detached: true,
    });
    const stop = (): void => {
      if (child.pid !== undefined) {
        try {
          process.kill(-child.pid, 'SIGTERM');
        } catch {
          // Already gone.
        }
      }
    };
    signal?.addEventListener('abort', stop, { once: true });
    try {
      const code = await new Promise<number | null>((res, rej) =>
        child.once('error', rej).once('close', res),
      );
      signal?.throwIfAborted();
      if (code !== 0) {
        throw new Error(
          `images/build failed with exit code ${String(code)}; see ${logPath}:\n${tail(logPath, 30)}`,
        );
      }
    } finally {
      signal?.removeEventListener('abort', stop);
    }
  } finally {
    closeSync(log);
  }
}

function tail(path: string, lines: number): string {
  return readFileSync(path, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
}
