import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  csiSanityPath,
  mountDataset,
  mountSkipReason,
  nodeLayout,
  spawnPlugin,
  volumeContext,
} from './helpers.ts';
import { startSanityProxy } from './sanity-proxy.ts';

interface SanityResult {
  code: number | null;
  output: string;
  passed: number;
  failed: number;
  skipped: number;
}

/** Runs csi-sanity against `endpoint`; the controller-only suites test a controller Tide does not have. */
function runSanity(
  endpoint: string,
  dirs: { mountDir: string; stagingDir: string; report: string },
  extraSkip: string[] = [],
): Promise<SanityResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      csiSanityPath(),
      [
        `--csi.endpoint=unix://${endpoint}`,
        `--csi.mountdir=${dirs.mountDir}`,
        `--csi.stagingdir=${dirs.stagingDir}`,
        `--ginkgo.skip=${['\\[Controller Server\\]', '\\[GroupController', ...extraSkip].join('|')}`,
        `--ginkgo.junit-report=${dirs.report}`,
        '--ginkgo.no-color',
        '--ginkgo.timeout=10m',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let output = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
    const timer = setTimeout(() => child.kill('SIGKILL'), 600_000);
    child.once('error', reject);
    child.once('exit', (code) => {
      clearTimeout(timer);
      const count = (label: string): number => Number(new RegExp(`(\\d+) ${label}`).exec(output)?.[1] ?? NaN);
      resolve({ code, output, passed: count('Passed'), failed: count('Failed'), skipped: count('Skipped') });
    });
  });
}

// In CI (.ci/run installs it) a missing csi-sanity fails the test instead of skipping it.
const skip =
  mountSkipReason() ||
  (existsSync(csiSanityPath()) || (process.env['CI'] ?? '') !== ''
    ? false
    : `csi-sanity is not built (${csiSanityPath()}; scripts/test-deps.d/50-csi-sanity.sh builds it)`);

test(
  'csi-sanity v5.6.0 passes against the node plugin, alone and with a test controller for the full flow',
  { skip, timeout: 900_000 },
  async (t) => {
    const layout = await nodeLayout('tide-csi-sanity-');
    t.after(() => layout.remove());
    const mount = await mountDataset(layout);
    t.after(() => mount.stop());
    const socketPath = join(layout.work, 'csi.sock');
    const plugin = await spawnPlugin(
      [
        '--node-id',
        'sanity-node',
        '--kubelet-dir',
        layout.kubeletDir,
        '--mount-root',
        layout.mountRoot,
        '--registration-dir',
        '',
        '--state-dir',
        layout.stateDir,
      ],
      socketPath,
    );
    t.after(() => plugin.stop());
    const dirs = (name: string) => ({
      mountDir: join(layout.kubeletDir, `${name}-mount`),
      stagingDir: join(layout.kubeletDir, `${name}-staging`),
      report: join(layout.work, `${name}.xml`),
    });

    await t.test(
      'node only: Identity and Node checks pass, the flow that needs CreateVolume skips',
      async () => {
        // These two create a volume first, which needs a controller: they run in the next subtest.
        const needCreateVolume = [
          'should remove target path',
          'NodeStageVolume should fail when no volume capability',
        ];
        const result = await runSanity(socketPath, dirs('direct'), needCreateVolume);
        t.diagnostic(
          `csi-sanity (node only): ${result.passed} passed, ${result.failed} failed, ${result.skipped} skipped`,
        );
        assert.equal(result.code, 0, result.output);
        assert.equal(result.failed, 0, result.output);
        assert.ok(result.passed >= 10, result.output);
      },
    );

    await t.test(
      'with the test controller: Stage → Publish → Unpublish → Unstage on the real FUSE mount passes',
      async () => {
        await mkdir(join(layout.work, 'proxy'), { recursive: true });
        const proxy = await startSanityProxy({
          socketPath: join(layout.work, 'proxy', 'proxy.sock'),
          pluginSocketPath: socketPath,
          volumeContext: volumeContext(layout),
        });
        t.after(() => proxy.close());
        const result = await runSanity(proxy.socketPath, dirs('proxied'));
        t.diagnostic(
          `csi-sanity (with the test controller): ${result.passed} passed, ${result.failed} failed, ${result.skipped} skipped`,
        );
        assert.equal(result.code, 0, result.output);
        assert.equal(result.failed, 0, result.output);
        const report = await readFile(dirs('proxied').report, 'utf8');
        const statuses = new Map(
          [...report.matchAll(/<testcase name="\[It\] ([^"]*)"[^>]*status="(\w+)"/g)].map((m) => [
            m[1],
            m[2],
          ]),
        );
        for (const spec of [
          'Node Service should work',
          'Node Service should be idempotent',
          'Node Service NodeUnpublishVolume should remove target path',
          'Node Service NodeStageVolume should fail when no volume capability is provided',
        ]) {
          assert.equal(statuses.get(spec), 'passed', `"${spec}" did not pass`);
        }
        // Nothing of the flow stays mounted: only the dataset's own FUSE mount is under the work directory.
        const mountinfo = await readFile('/proc/self/mountinfo', 'utf8');
        const left = mountinfo
          .split('\n')
          .filter((line) => (line.split(' ')[4] ?? '').startsWith(layout.kubeletDir));
        assert.deepEqual(left, []);
      },
    );
  },
);
