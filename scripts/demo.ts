/**
 * The main job on one machine (`npm run demo`): start Tide and a bandwidth-limited local origin,
 * mount a dataset through a TideRuntime, time `cp -r` cold, warm the cache with a DataLoad, time it
 * again, and leave everything running to explore. `npm run demo -- --stop` stops it all.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, open, readFile, rm, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';

const root = join(import.meta.dirname, '..');
const home = process.env['TIDE_HOME'] ?? join(homedir(), '.tide');
const mountRoot = process.env['TIDE_MOUNT_ROOT'] ?? join(home, 'mnt');
const demoDir = join(home, 'demo');
const originDir = join(demoDir, 'origin');
const bandwidth = 20 * 1024 * 1024;
const env = { ...process.env, TIDE_HOME: home, TIDE_MOUNT_ROOT: mountRoot };

function tide(...args: string[]): string {
  return execFileSync(join(root, 'bin', 'tide'), args, { env, encoding: 'utf8' });
}

function say(line: string): void {
  process.stdout.write(`${line}\n`);
}

async function sleep(ms: number): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, ms));
}

async function until(what: string, probe: () => boolean, timeoutMs = 120_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!probe()) {
    if (Date.now() > deadline)
      throw new Error(
        `gave up waiting for ${what} after ${timeoutMs / 1000}s; see ${home}/logs and ${home}/run`,
      );
    await sleep(500);
  }
}

function statusOf(kind: string, name: string): Record<string, unknown> {
  try {
    return (
      (JSON.parse(tide('get', kind, name, '-o', 'json')) as { status?: Record<string, unknown> }).status ?? {}
    );
  } catch {
    return {};
  }
}

/** An HBase-release-like tree: jars, configuration and docs, generated deterministically. */
async function generateData(): Promise<number> {
  const marker = join(originDir, '.complete');
  if (existsSync(marker)) return Number(await readFile(marker, 'utf8'));
  let total = 0;
  const layout: [string, number, number][] = [
    ['hbase/lib', 40, 2_000_000],
    ['hbase/conf', 12, 8_000],
    ['hbase/docs', 30, 600_000],
    ['hbase/bin', 10, 20_000],
  ];
  for (const [dir, count, size] of layout) {
    await mkdir(join(originDir, dir), { recursive: true });
    for (let index = 0; index < count; index += 1) {
      const seed = createHash('sha256').update(`${dir}/${index}`).digest();
      const data = Buffer.alloc(size + index * 1013);
      for (let offset = 0; offset < data.length; offset += seed.length) seed.copy(data, offset);
      await writeFile(join(originDir, dir, `part-${String(index).padStart(3, '0')}.dat`), data);
      total += data.length;
    }
  }
  await writeFile(join(originDir, 'hbase', 'RELEASENOTES.md'), 'Tide demo release notes\n');
  await writeFile(marker, String(total + 24));
  return total + 24;
}

async function startOrigin(): Promise<number> {
  const portFile = join(demoDir, 'origin.port');
  const pidFile = join(demoDir, 'origin.pid');
  if (existsSync(pidFile)) {
    const pid = Number(await readFile(pidFile, 'utf8'));
    if (existsSync(`/proc/${pid}`)) return Number(await readFile(portFile, 'utf8'));
  }
  await rm(portFile, { force: true });
  const log = await open(join(demoDir, 'origin.log'), 'a');
  const child = spawn(
    process.execPath,
    [join(root, 'scripts', 'demo-origin.ts'), originDir, String(bandwidth), portFile],
    {
      detached: true,
      stdio: ['ignore', log.fd, log.fd],
    },
  );
  child.unref();
  await log.close();
  await writeFile(pidFile, String(child.pid));
  await until('the demo origin', () => existsSync(portFile));
  return Number(await readFile(portFile, 'utf8'));
}

function timedCopy(source: string, target: string): number {
  spawnSync('rm', ['-rf', target]);
  // Drop the kernel page cache so that the second copy measures Tide's cache, not the kernel's.
  spawnSync('sh', ['-c', 'sync; echo 3 > /proc/sys/vm/drop_caches'], { stdio: 'ignore' });
  const started = performance.now();
  const result = spawnSync('cp', ['-r', source, target], { stdio: 'inherit' });
  if (result.status !== 0) throw new Error(`cp -r ${source} failed`);
  return (performance.now() - started) / 1000;
}

async function stop(): Promise<void> {
  say(tide('stop').trim());
  const pidFile = join(demoDir, 'origin.pid');
  if (existsSync(pidFile)) {
    const pid = Number(await readFile(pidFile, 'utf8'));
    try {
      process.kill(pid, 'SIGTERM');
    } catch {
      // already stopped
    }
    await rm(pidFile, { force: true });
    say('demo origin stopped');
  }
}

async function main(): Promise<void> {
  if (process.argv.includes('--stop')) {
    await stop();
    return;
  }
  await mkdir(demoDir, { recursive: true });
  say('1. generating the demo data set (an HBase-like release tree)');
  const total = await generateData();
  const port = await startOrigin();
  say(
    `2. origin: http://127.0.0.1:${port}/ serving ${(total / 2 ** 20).toFixed(1)} MiB at ${bandwidth / 2 ** 20} MiB/s in total, like a far mirror`,
  );
  say(`3. ${tide('start').trim()}`);
  const manifest = join(demoDir, 'demo.yaml');
  await writeFile(
    manifest,
    `apiVersion: data.fluid.io/v1alpha1
kind: Dataset
metadata: {name: hbase}
spec:
  mounts:
    - mountPoint: http://127.0.0.1:${port}/hbase/
      name: hbase
---
apiVersion: data.fluid.io/v1alpha1
kind: TideRuntime
metadata: {name: hbase}
spec:
  replicas: 2
  tieredstore:
    levels:
      - {mediumtype: MEM, path: /dev/shm, quota: 256Mi, high: "0.95", low: "0.8"}
      - {mediumtype: SSD, path: ${join(home, 'cache')}, quota: 2Gi, high: "0.95", low: "0.8"}
  fuse:
    args: [-okernel_cache, -oattr_timeout=60, -oentry_timeout=60]
`,
  );
  say(`4. tide apply -f ${manifest}`);
  process.stdout.write(tide('apply', '-f', manifest));
  await until('the dataset to be Bound', () => statusOf('dataset', 'hbase')['phase'] === 'Bound');
  const mount = join(mountRoot, 'default', 'hbase');
  say(tide('get', 'dataset', 'hbase'));
  const copy = join(demoDir, 'copy');
  say(`5. time cp -r ${mount}/hbase (cold: every byte comes from the origin)`);
  const cold = timedCopy(join(mount, 'hbase'), copy);
  say(`   cold copy: ${cold.toFixed(3)} s`);
  await writeFile(
    join(demoDir, 'dataload.yaml'),
    `apiVersion: data.fluid.io/v1alpha1\nkind: DataLoad\nmetadata: {name: hbase-warmup-${Date.now()}}\nspec:\n  dataset: {name: hbase, namespace: default}\n  target: [{path: /hbase, replicas: 1}]\n`,
  );
  say('6. DataLoad: warm the whole dataset');
  const applied = tide('apply', '-f', join(demoDir, 'dataload.yaml'));
  const loadName = /dataload\.data\.fluid\.io\/(\S+)/.exec(applied)?.[1] ?? '';
  await until('the DataLoad to complete', () =>
    ['Complete', 'Failed'].includes(String(statusOf('dataload', loadName)['phase'])),
  );
  say(tide('get', 'dataload', loadName));
  say(`7. time cp -r ${mount}/hbase (warm: served by Tide's cache, kernel page cache dropped)`);
  const warm = timedCopy(join(mount, 'hbase'), copy);
  say(`   warm copy: ${warm.toFixed(3)} s`);
  say(tide('get', 'dataset', 'hbase'));
  say(`cold ${cold.toFixed(3)} s, warm ${warm.toFixed(3)} s: ${(cold / warm).toFixed(1)}x faster`);
  say('');
  say(`The dataset stays mounted at ${mount}. Look around:`);
  say(`  ls -l ${mount}/hbase`);
  say('  bin/tide get dataset -o wide; bin/tide describe dataset hbase; bin/tide get tideruntime');
  say('Stop everything (unmount, workers, origin): npm run demo -- --stop');
}

main().catch((error: unknown) => {
  process.stderr.write(`demo: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exitCode = 1;
});
