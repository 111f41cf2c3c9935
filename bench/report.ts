import { writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { run } from './exec.ts';
import { summarize, type Results } from './results.ts';
import type { System } from './systems.ts';

interface Reference {
  /** A system id with its own measurement of `metric`, or a fixed value. */
  system?: string;
  metric?: string;
  value?: number;
  label: string;
}

export interface MetricDescriptor {
  id: string;
  title: string;
  unit: string;
  better: 'higher' | 'lower';
  /** How it is measured, one sentence. */
  how: string;
  /** The first is the ratio's denominator; all are shown as rows. */
  refs: readonly Reference[];
  digits: number;
}

export function metricDescriptors(readerCounts: readonly number[]): MetricDescriptor[] {
  const fanout = readerCounts.flatMap((count): MetricDescriptor[] => [
    {
      id: `amp${count}`,
      title: `Origin bytes ÷ unique bytes, ${count} concurrent reader${count === 1 ? '' : 's'}`,
      unit: '×',
      better: 'lower',
      how: `${count} process${count === 1 ? '' : 'es'} read the same cold file at once (dd, 1 MiB); origin body bytes from the nginx log ÷ file size.`,
      refs: [
        { value: 1, label: 'limit: every byte fetched once' },
        { value: count, label: 'naive: every reader fetches on its own' },
      ],
      digits: 2,
    },
    {
      id: `fanout${count}`,
      title: `Aggregate read rate, ${count} concurrent reader${count === 1 ? '' : 's'} of a cold file`,
      unit: 'MB/s',
      better: 'higher',
      how: `${count} × file size ÷ time until the last reader finished.`,
      refs: [{ system: 'curl-P', metric: 'coldRead', label: 'origin, parallel ranged curl (one copy)' }],
      digits: 0,
    },
  ]);
  return [
    {
      id: 'coldRead',
      title: 'Cold sequential read of the model file',
      unit: 'MB/s',
      better: 'higher',
      how: 'Fresh mount, empty caches, page cache dropped; dd bs=1M of the whole file.',
      refs: [
        { system: 'curl-P', metric: 'coldRead', label: 'limit: origin, parallel ranged curl' },
        { system: 'curl-1', metric: 'coldRead', label: 'origin, one curl stream' },
      ],
      digits: 0,
    },
    {
      id: 'warmRead',
      title: 'Warm read through the daemon (page cache dropped)',
      unit: 'MB/s',
      better: 'higher',
      how: 'Right after the cold read, drop_caches, read again: served from the daemon’s cache.',
      refs: [
        { system: 'local', metric: 'directRead', label: 'limit: local disk, O_DIRECT 4 MiB × 4 (fio)' },
        { system: 'local', metric: 'coldRead', label: 'local disk, cold (dd bs=1M)' },
      ],
      digits: 0,
    },
    {
      id: 'rereadKept',
      title: 'Warm re-read (page cache kept)',
      unit: 'MB/s',
      better: 'higher',
      how: 'A third read without dropping caches: the kernel page cache if the mount keeps it.',
      refs: [{ system: 'local', metric: 'rereadKept', label: 'limit: local page cache' }],
      digits: 0,
    },
    {
      id: 'ttfbCold',
      title: 'Time to first byte, cold',
      unit: 'ms',
      better: 'lower',
      how: 'open + 1-byte read of a file not read before, on a fresh mount; median of the files.',
      refs: [
        { system: 'curl-1', metric: 'ttfbCold', label: 'origin: curl 1-byte range (time_starttransfer)' },
        { system: 'local', metric: 'ttfbCold', label: 'local disk, cold' },
      ],
      digits: 2,
    },
    {
      id: 'ttfbWarm',
      title: 'Time to first byte, warm in the daemon (page cache dropped)',
      unit: 'ms',
      better: 'lower',
      how: 'The same files again after drop_caches.',
      refs: [{ system: 'local', metric: 'ttfbCold', label: 'limit: local disk, cold' }],
      digits: 2,
    },
    {
      id: 'smallCold',
      title: 'Small files (16 KiB), cold',
      unit: 'files/s',
      better: 'higher',
      how: 'Every small file read whole, 16 at a time, on a fresh mount with the page cache dropped.',
      refs: [
        { system: 'curl-P', metric: 'smallCold', label: 'limit: origin, curl --parallel 16' },
        { system: 'local', metric: 'smallCold', label: 'local disk, cold' },
      ],
      digits: 0,
    },
    {
      id: 'smallWarm',
      title: 'Small files (16 KiB), warm in the daemon (page cache dropped)',
      unit: 'files/s',
      better: 'higher',
      how: 'The same read again after drop_caches.',
      refs: [
        { system: 'local', metric: 'smallCold', label: 'limit: local disk, cold' },
        { system: 'local', metric: 'smallKept', label: 'local page cache' },
      ],
      digits: 0,
    },
    {
      id: 'lsCold',
      title: '`ls -lR` of the tree, cold',
      unit: 'entries/s',
      better: 'higher',
      how: 'ls -lR over the whole tree on a fresh mount after drop_caches; entries ÷ seconds.',
      refs: [{ system: 'local', metric: 'lsCold', label: 'limit: local disk, cold' }],
      digits: 0,
    },
    {
      id: 'statWarm',
      title: 'stat of every tree entry, warm',
      unit: 'entries/s',
      better: 'higher',
      how: 'readdir + lstat of every entry, one call at a time as find, du and os.walk do, right after the cold ls -lR.',
      refs: [{ system: 'local', metric: 'statWarm', label: 'limit: local, dentries cached' }],
      digits: 0,
    },
    {
      id: 'lsWarm',
      title: '`ls -lR` of the tree, warm',
      unit: 'entries/s',
      better: 'higher',
      how: 'ls -lR again.',
      refs: [{ system: 'local', metric: 'lsWarm', label: 'limit: local, dentries cached' }],
      digits: 0,
    },
    {
      id: 'sqliteCold',
      title: 'SQLite random point queries, cold',
      unit: 'queries/s',
      better: 'higher',
      how: 'SELECT by random id (one 4 KiB page each) on the read-only database (immutable=1), fresh mount.',
      refs: [{ system: 'local', metric: 'sqliteCold', label: 'limit: local disk, cold' }],
      digits: 0,
    },
    {
      id: 'sqliteWarm',
      title: 'SQLite random point queries, warm in the daemon (page cache dropped)',
      unit: 'queries/s',
      better: 'higher',
      how: 'The same ids again after drop_caches: the pages come from the daemon’s cache.',
      refs: [
        { system: 'local', metric: 'sqliteCold', label: 'limit: local disk, cold' },
        { system: 'local', metric: 'sqliteKept', label: 'local page cache' },
      ],
      digits: 0,
    },
    {
      id: 'ampModel',
      title: 'Origin bytes ÷ unique bytes of the model file (one reader, read three times)',
      unit: '×',
      better: 'lower',
      how: 'Origin body bytes for the model file over the whole round ÷ its size.',
      refs: [{ value: 1, label: 'limit: fetched once' }],
      digits: 2,
    },
    ...fanout,
    {
      id: 'cpuPerGB',
      title: 'CPU seconds per GB served',
      unit: 'CPU s/GB',
      better: 'lower',
      how: 'utime+stime (/proc/PID/stat) of every daemon process during the cold and the warm read ÷ GB read.',
      refs: [
        {
          system: 'curl-P',
          metric: 'cpuPerGB',
          label: 'the origin itself: nginx serving the parallel curl read',
        },
      ],
      digits: 2,
    },
    {
      id: 'peakRss',
      title: 'Peak memory of the daemons',
      unit: 'MB',
      better: 'lower',
      how: 'Sum of VmHWM (/proc/PID/status) of every daemon process at the end of a round.',
      refs: [],
      digits: 0,
    },
    {
      id: 'ready',
      title: 'Time from the start command to a usable mount',
      unit: 's',
      better: 'lower',
      how: 'Tide: tide start + apply until the Dataset is Bound and mounted; peers: until the mount appears.',
      refs: [],
      digits: 2,
    },
    {
      id: 'dataloadMBps',
      title: 'DataLoad throughput (model file)',
      unit: 'MB/s',
      better: 'higher',
      how: 'kind: DataLoad of the model file on a fresh runtime; apply → phase Complete.',
      refs: [{ system: 'curl-P', metric: 'coldRead', label: 'limit: origin, parallel ranged curl' }],
      digits: 0,
    },
    {
      id: 'dataloadFiles',
      title: 'DataLoad files per second (small files)',
      unit: 'files/s',
      better: 'higher',
      how: 'kind: DataLoad of the small-file directory on a fresh runtime; apply → phase Complete.',
      refs: [{ system: 'curl-P', metric: 'smallCold', label: 'limit: origin, curl --parallel 16' }],
      digits: 0,
    },
  ];
}

function format(value: number, digits: number): string {
  if (!Number.isFinite(value)) return '—';
  if (Math.abs(value) >= 1000) return Math.round(value).toLocaleString('en-US');
  return value.toFixed(Math.abs(value) < 10 && digits === 0 ? 1 : digits);
}

export interface RunInfo {
  date: string;
  profileName: string;
  machine: string[];
  versions: string[];
  origin: string[];
  durationSeconds: number;
  /** Set while the run is still going (the report is rewritten after every system). */
  incomplete?: string;
}

/** The tables of one run, as Markdown, without the title. */
export function renderRun(options: {
  info: RunInfo;
  results: Results;
  systems: readonly System[];
  metrics: readonly MetricDescriptor[];
  plots: readonly string[];
}): string {
  const { info, results, systems, metrics } = options;
  const out: string[] = [];
  out.push(`## Run of ${info.date} (${info.profileName} profile)`, '');
  if (info.incomplete !== undefined) out.push(`**Incomplete run**: ${info.incomplete}.`, '');
  out.push(
    `Took ${Math.round(info.durationSeconds)} s. Every figure is the median of the rounds (each round a fresh mount with empty caches), with min and max; the ratio is the median ÷ the first reference row.`,
    '',
  );
  out.push('**Machine**', '', ...info.machine.map((line) => `- ${line}`), '');
  out.push('**Versions**', '', ...info.versions.map((line) => `- ${line}`), '');
  out.push('**Origin**', '', ...info.origin.map((line) => `- ${line}`), '');
  out.push('**Systems and options**', '', '| System | Options | Notes |', '| --- | --- | --- |');
  for (const system of systems) {
    const notes = results.notes(system.id).join('; ').replace(/\|/g, '\\|').replace(/\n/g, ' ');
    out.push(`| ${system.label} | ${system.options.replace(/\|/g, '\\|')} | ${notes} |`);
  }
  out.push('');
  const measured = systems.filter((system) => system.role !== 'local');
  out.push(...summaryTable(results, measured, metrics), '');
  for (const plot of options.plots) out.push(`![${basename(plot, '.png')}](${basename(plot)})`, '');

  for (const metric of metrics) {
    const rows: string[] = [];
    const refValue = referenceValue(results, metric);
    for (const system of measured) {
      const summary = summarize(results.samples(system.id, metric.id));
      if (summary === undefined) {
        if (metric.id.startsWith('dataload') && system.role !== 'tide') continue;
        const why = results.notes(system.id).some((note) => note.startsWith('not available'))
          ? 'not available (see Systems)'
          : 'not measured (see Systems)';
        rows.push(`| ${system.label} | ${why} | | | |`);
        continue;
      }
      const ratio = summary.median / refValue;
      rows.push(
        `| ${system.label} | ${format(summary.median, metric.digits)} | ${format(summary.min, metric.digits)} | ${format(summary.max, metric.digits)} | ${Number.isFinite(ratio) ? `${ratio.toFixed(2)}×` : '—'} |`,
      );
    }
    for (const reference of metric.refs) {
      if (reference.value !== undefined) {
        rows.push(
          `| _${reference.label}_ | ${format(reference.value, metric.digits)} | | | ${(reference.value / refValue).toFixed(2)}× |`,
        );
        continue;
      }
      const summary = summarize(results.samples(reference.system ?? '', reference.metric ?? metric.id));
      if (summary === undefined) {
        rows.push(`| _${reference.label}_ | not measured | | | |`);
        continue;
      }
      rows.push(
        `| _${reference.label}_ | ${format(summary.median, metric.digits)} | ${format(summary.min, metric.digits)} | ${format(summary.max, metric.digits)} | ${(summary.median / refValue).toFixed(2)}× |`,
      );
    }
    if (rows.length === 0) continue;
    out.push(`### ${metric.title} (${metric.unit}, ${metric.better} is better)`, '', metric.how, '');
    out.push(`| System | median | min | max | ratio |`, '| --- | --: | --: | --: | --: |', ...rows, '');
  }
  return out.join('\n');
}

function referenceValue(results: Results, metric: MetricDescriptor): number {
  const ref = metric.refs[0];
  if (ref === undefined) return Number.NaN;
  return (
    ref.value ?? summarize(results.samples(ref.system ?? '', ref.metric ?? metric.id))?.median ?? Number.NaN
  );
}

/** One line per metric, one column per system: the median ÷ the metric's first reference. */
function summaryTable(
  results: Results,
  systems: readonly System[],
  metrics: readonly MetricDescriptor[],
): string[] {
  const columns = systems.filter((system) =>
    metrics.some((metric) => results.samples(system.id, metric.id).length > 0),
  );
  if (columns.length === 0) return [];
  const lines = [
    '**Summary**: median ÷ reference (the first reference row of each table below; for "lower is better" metrics a ratio below 1 is good), or the value itself where there is no reference.',
    '',
    `| Metric | ${columns.map((system) => system.label).join(' | ')} |`,
    `| --- | ${columns.map(() => '--:').join(' | ')} |`,
  ];
  for (const metric of metrics) {
    const ref = referenceValue(results, metric);
    const cells = columns.map((system) => {
      const summary = summarize(results.samples(system.id, metric.id));
      if (summary === undefined) return '—';
      if (!Number.isFinite(ref)) return `${format(summary.median, metric.digits)} ${metric.unit}`;
      return `${(summary.median / ref).toFixed(2)}×`;
    });
    if (cells.every((cell) => cell === '—')) continue;
    const arrow = metric.better === 'higher' ? '↑' : '↓';
    lines.push(`| ${metric.title} ${arrow} | ${cells.join(' | ')} |`);
  }
  return lines;
}

const PREVIOUS = '## Previous runs';

/**
 * Writes RESULTS.md: the new run on top, then every earlier run of `old` (the file as it was before
 * this run) under "Previous runs", their headings one level down and without the plots, which the
 * new run replaced.
 */
export async function writeResultsFile(path: string, runMarkdown: string, old: string): Promise<void> {
  let previousCurrent = '';
  let previousOlder = '';
  if (old !== '') {
    const cut = old.indexOf(`\n${PREVIOUS}\n`);
    const head = cut === -1 ? old : old.slice(0, cut);
    previousOlder = cut === -1 ? '' : old.slice(cut + PREVIOUS.length + 2).trim();
    const start = head.indexOf('\n## Run of ');
    previousCurrent =
      start === -1
        ? ''
        : head
            .slice(start + 1)
            .split('\n')
            .filter((line) => !line.startsWith('!['))
            .map((line) => (line.startsWith('#') ? `#${line}` : line))
            .join('\n')
            .trim();
  }
  const parts = [
    '# Benchmark results',
    '',
    'Written by `npm run bench` (bench/run; `--quick` for a smoke run). Benchmarks are not tests: the figures are ratios against references measured in the same run on the same machine, because absolute numbers on a shared 2-core machine drift. The method is described at the top of bench/main.ts.',
    '',
    runMarkdown.trim(),
    '',
    PREVIOUS,
    '',
    [previousCurrent, previousOlder].filter((part) => part !== '').join('\n\n') || '_None yet._',
    '',
  ];
  await writeFile(path, parts.join('\n'));
}

/**
 * Plots with gnuplot (pngcairo): the three sequential-read rates per system (log scale) and the
 * aggregate rate of N concurrent readers of one cold file. Returns the PNG paths it wrote.
 */
export async function plot(options: {
  dir: string;
  results: Results;
  systems: readonly System[];
  readerCounts: readonly number[];
}): Promise<string[]> {
  const { dir, results } = options;
  const written: string[] = [];
  const label = (system: System): string => system.label.replace(/"/g, "'");
  const med = (system: string, metric: string): number =>
    summarize(results.samples(system, metric))?.median ?? Number.NaN;
  const measured = options.systems.filter(
    (system) => system.role !== 'local' && results.samples(system.id, 'coldRead').length > 0,
  );

  const throughputData = join(dir, 'out', 'throughput.dat');
  const rows = [
    ...measured.map(
      (system) =>
        [
          label(system),
          med(system.id, 'coldRead'),
          med(system.id, 'warmRead'),
          med(system.id, 'rereadKept'),
        ] as const,
    ),
    ['origin curl, 8 streams', med('curl-P', 'coldRead'), Number.NaN, Number.NaN] as const,
    ['origin curl, 1 stream', med('curl-1', 'coldRead'), Number.NaN, Number.NaN] as const,
    ['local disk', med('local', 'coldRead'), med('local', 'coldRead'), med('local', 'rereadKept')] as const,
  ];
  await writeFile(
    throughputData,
    rows
      .map(
        ([name, a, b, c]) =>
          `"${name}" ${[a, b, c].map((v) => (Number.isFinite(v) ? v.toFixed(1) : 'NaN')).join(' ')}`,
      )
      .join('\n') + '\n',
  );
  const throughputPng = join(dir, 'results-throughput.png');
  const script1 = `
set terminal pngcairo size 1100,520 font "DejaVu Sans,10"
set output "${throughputPng}"
set title "Sequential read of the model file (MB/s, log scale; higher is better)"
set style data histogram
set style histogram cluster gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set logscale y
set yrange [1:*]
set grid ytics
set xtics rotate by -20 noenhanced
set key outside top center horizontal
plot "${throughputData}" using 2:xtic(1) title "cold (origin)", "" using 3 title "warm, page cache dropped", "" using 4 title "re-read, page cache kept"
`;
  const fanoutData = join(dir, 'out', 'fanout.dat');
  const fanoutLines = options.readerCounts.map(
    (count) =>
      `${count} ${med('curl-P', 'coldRead').toFixed(1)} ${measured
        .map((system) => {
          const value = med(system.id, `fanout${count}`);
          return Number.isFinite(value) ? value.toFixed(1) : 'NaN';
        })
        .join(' ')}`,
  );
  await writeFile(fanoutData, `${fanoutLines.join('\n')}\n`);
  const fanoutPng = join(dir, 'results-fanout.png');
  const series = measured
    .map(
      (system, index) =>
        `"${fanoutData}" using 1:${index + 3} with linespoints lw 2 title "${label(system)}"`,
    )
    .join(', ');
  const counts = options.readerCounts;
  const script2 = `
set terminal pngcairo size 900,600 font "DejaVu Sans,10"
set output "${fanoutPng}"
set title "N readers of one cold file at once: aggregate MB/s (higher is better)"
set logscale xy
set xrange [${Math.min(...counts) * 0.8}:${Math.max(...counts) * 1.25}]
set xlabel "concurrent readers"
set ylabel "MB/s (N × file size ÷ time until the last reader finished)"
set xtics (${counts.join(', ')})
set grid
set key below noenhanced
plot "${fanoutData}" using 1:2 with lines dt 2 lw 2 lc rgb "gray" title "origin: parallel ranged curl, one copy", ${series}
`;
  for (const [script, png] of [
    [script1, throughputPng],
    [script2, fanoutPng],
  ] as const) {
    const result = await run('gnuplot', [], { timeoutMs: 60_000, input: script });
    if (result.code === 0) written.push(png);
    else process.stderr.write(`bench: gnuplot failed for ${basename(png)}: ${result.stderr}\n`);
  }
  return written;
}
