/**
 * Web connector listing benchmark (not a test): a recursive list of a tree of small files served by
 * nginx autoindex, through the connector, with the origin requests counted from nginx's access log.
 * It measures what `ls -lR` cold, the metadata sync and a DataLoad's listing cost against a web
 * origin: entries per second and requests per entry.
 *
 *   node bench/ufs-list.ts [--files 20000] [--per-dir 100] [--rounds 2] [--format html|json|xml]
 *
 * The tree is `d<i>/s<j>/f<k>` with `--per-dir` files per leaf directory and ten leaf directories per
 * top directory, written once in a temporary directory (sizes vary so that they are not all equal).
 * Each round uses a fresh connector; nginx's own caches are warm after the first round, so the
 * first round is the cold figure.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { createUnderFileSystem } from '../src/ufs/index.ts';
import { startNginx } from '../test/helpers/nginx.ts';

const { values } = parseArgs({
  options: {
    files: { type: 'string', default: '20000' },
    'per-dir': { type: 'string', default: '100' },
    rounds: { type: 'string', default: '2' },
    format: { type: 'string', default: 'html' },
  },
});
const files = Number(values.files);
const perDir = Number(values['per-dir']);
const rounds = Number(values.rounds);
const format = values.format as 'html' | 'json' | 'xml';

async function writeTree(root: string): Promise<void> {
  const leaves = Math.ceil(files / perDir);
  let written = 0;
  for (let leaf = 0; leaf < leaves; leaf++) {
    const dir = join(root, `d${Math.floor(leaf / 10)}`, `s${leaf % 10}`);
    await mkdir(dir, { recursive: true });
    const writes = [];
    for (let k = 0; k < perDir && written < files; k++, written++) {
      writes.push(writeFile(join(dir, `f${k}.bin`), Buffer.alloc((written * 37) % 5000)));
    }
    await Promise.all(writes);
  }
}

const root = await mkdtemp(join(tmpdir(), 'tide-bench-list-'));
const nginx = await startNginx({ root, autoindexFormat: format });
try {
  await writeTree(root);
  for (let round = 1; round <= rounds; round++) {
    const before = (await nginx.accessLog()).length;
    const ufs = createUnderFileSystem({ mountPoint: nginx.url, options: {}, secrets: {} }, {});
    const cpuBefore = process.cpuUsage();
    const started = process.hrtime.bigint();
    let entries = 0;
    let bytes = 0;
    for await (const entry of ufs.list('', { recursive: true })) {
      entries++;
      bytes += entry.sizeBytes;
    }
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    const cpu = process.cpuUsage(cpuBefore);
    await ufs.close();
    // nginx writes a log line when a request ends; the connector has closed its connections.
    await new Promise((resolve) => setTimeout(resolve, 200));
    const log = (await nginx.accessLog()).slice(before);
    const byMethod = new Map<string, number>();
    for (const record of log) byMethod.set(record.method, (byMethod.get(record.method) ?? 0) + 1);
    console.log(
      JSON.stringify({
        round,
        format,
        entries,
        bytes,
        seconds: Number(seconds.toFixed(3)),
        entriesPerSecond: Math.round(entries / seconds),
        cpuSeconds: Number(((cpu.user + cpu.system) / 1e6).toFixed(3)),
        requests: Object.fromEntries(byMethod),
      }),
    );
  }
} finally {
  await nginx.stop();
  await rm(root, { recursive: true, force: true });
}
