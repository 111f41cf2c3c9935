/** What every suite on real nodes starts from: a cluster whose nodes hold Tide's images, and the chart values for them. */
import { createHash } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { ensureImages, type BuiltImage, type BuiltImages } from '../helpers/images.ts';
import { startCluster, type TestCluster } from './cluster.ts';

/** Chart values for the images as imported into the nodes' containerd (no registry). */
export const LOCAL_IMAGE_VALUES: readonly string[] = [
  'image.prefix=tide.local',
  'image.tag=dev',
  'image.pullPolicy=Never',
];

/**
 * Builds (or finds) the images, starts a cluster of `realNodes` real nodes and no kwok node, and imports
 * the images (and `extraImages`) into each node's containerd.
 */
export async function startClusterWithImages(
  realNodes: number,
  extraImages: (images: BuiltImages) => readonly BuiltImage[] = () => [],
): Promise<{ cluster: TestCluster; images: BuiltImages }> {
  const images = await ensureImages();
  const cluster = await startCluster({ realNodes, nodes: [] });
  try {
    const archives = [...Object.values(images.images), ...extraImages(images)];
    await Promise.all(cluster.realNodes.map((node) => node.importImages(archives)));
  } catch (error) {
    await cluster.stop();
    throw error;
  }
  return { cluster, images };
}

/**
 * Writes files of the given sizes below `root`, each block of 4 KiB stamped with its path and offset (so
 * that a misplaced block shows), and returns the sha256 of each by path.
 */
export async function writeStampedFiles(
  root: string,
  sizes: Record<string, number>,
): Promise<Map<string, string>> {
  const sums = new Map<string, string>();
  for (const [path, size] of Object.entries(sizes)) {
    const file = join(root, path);
    await mkdir(dirname(file), { recursive: true });
    const bytes = Buffer.alloc(size);
    for (let i = 0; i < size; i += 4096) bytes.write(`${path}@${i};`, i);
    await writeFile(file, bytes);
    sums.set(path, createHash('sha256').update(bytes).digest('hex'));
  }
  return sums;
}
