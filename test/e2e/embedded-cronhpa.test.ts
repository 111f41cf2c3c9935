/**
 * Embedded mode: a CronHorizontalPodAutoscaler scales a TideRuntime on a seconds schedule, and a
 * run missed while the daemon was stopped is caught up when it starts again.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { tideIn, until } from './tide-cli.ts';

let home = '';
const tide = (...args: string[]): Promise<string> => tideIn(home)(...args);

interface Object {
  spec: { replicas?: number };
  status?: { workerNumberReady?: number; conditions?: { name: string; state: string; message: string }[] };
}

async function get(kind: string, name: string): Promise<Object> {
  return JSON.parse(await tide('get', kind, name, '-o', 'json')) as Object;
}

async function apply(name: string, text: string): Promise<string> {
  const path = join(home, name);
  await writeFile(path, text);
  return tide('apply', '-f', path);
}

function cronHpaYaml(jobs: string): string {
  return `apiVersion: autoscaling.alibabacloud.com/v1beta1
kind: CronHorizontalPodAutoscaler
metadata:
  name: clock
  annotations: {tide.io/time-zone: UTC}
spec:
  scaleTargetRef: {apiVersion: data.fluid.io/v1alpha1, kind: TideRuntime, name: clocked}
  jobs:
${jobs}
`;
}

/** `YYYY-MM-DD HH:MM:SS` in UTC, as `@date` takes it. */
function dateField(date: Date): string {
  return date.toISOString().slice(0, 19).replace('T', ' ');
}

describe('embedded mode: CronHPA', { timeout: 300_000 }, () => {
  before(async () => {
    home = await mkdtemp(join(tmpdir(), 'tide-cronhpa-'));
    const origin = join(home, 'origin');
    await mkdir(origin, { recursive: true });
    await writeFile(join(origin, 'a.txt'), 'hello');
    await tide('start');
    await apply(
      'runtime.yaml',
      `apiVersion: data.fluid.io/v1alpha1
kind: Dataset
metadata: {name: clocked}
spec:
  mounts: [{mountPoint: "local://${origin}", name: data}]
---
apiVersion: data.fluid.io/v1alpha1
kind: TideRuntime
metadata: {name: clocked}
spec:
  replicas: 1
  tieredstore:
    levels: [{mediumtype: SSD, path: ${join(home, 'cache')}, quota: 64Mi}]
`,
    );
  });

  after(async () => {
    await tide('stop').catch(() => undefined);
    await rm(home, { recursive: true, force: true });
  });

  it('scales the runtime from a */5 seconds job, with the condition, event and table row', async () => {
    await apply('cron.yaml', cronHpaYaml("    - {name: up, schedule: '*/5 * * * * *', targetSize: 2}"));
    await until('two workers ready', async () =>
      (await get('tideruntime', 'clocked')).status?.workerNumberReady === 2 ? true : undefined,
    );
    const [condition] = (await get('cronhpa', 'clock')).status?.conditions ?? [];
    assert.equal(condition?.state, 'Succeed');
    // The job runs every 5 s, so the condition may already show a later run (2 → 2); the
    // events keep the first one, which scaled 1 → 2.
    assert.match(
      condition.message,
      /^cron hpa job up executed successfully\. current replicas:[12], desired replicas:2\.$/,
    );
    const table = await tide('get', 'cronhpa');
    assert.match(table, /^NAME\s+TARGET\s+JOBS\s+LAST RUN\s+AGE$/m);
    assert.match(table, /^clock\s+TideRuntime\/clocked\s+1\s+up Succeed \d+s ago/m);
    const description = await tide('describe', 'cronhpa', 'clock');
    assert.match(description, /^ {2}up=Succeed {2}\S+: cron hpa job up executed successfully/m);
    assert.match(
      description,
      /Normal\s+Succeed\s.*cron hpa job up executed successfully\. current replicas:1, desired replicas:2\./,
    );
  });

  it('catches up a run missed while the daemon was stopped', async () => {
    const at = new Date(Date.now() + 8000);
    await apply(
      'cron.yaml',
      cronHpaYaml(`    - {name: down, schedule: '@date ${dateField(at)}', targetSize: 1}`),
    );
    await until('the new job submitted', async () =>
      (await get('cronhpa', 'clock')).status?.conditions?.[0]?.name === 'down' ? true : undefined,
    );
    await tide('stop');
    const waitMs = at.getTime() + 6000 - Date.now();
    if (waitMs > 0) await new Promise((resolve) => setTimeout(resolve, waitMs));
    await tide('start');
    const condition = await until('the missed run caught up', async () => {
      const found = (await get('cronhpa', 'clock')).status?.conditions?.[0];
      return found?.state === 'Succeed' ? found : undefined;
    });
    assert.match(condition.message, /desired replicas:1\. \(caught up at .*: the run was missed\)/);
    assert.equal((await get('tideruntime', 'clocked')).spec.replicas, 1);
  });

  it('refuses an HPA target where the daemon serves no HPAs', async () => {
    const path = join(home, 'hpa.yaml');
    await writeFile(
      path,
      cronHpaYaml("    - {name: up, schedule: '@hourly', targetSize: 2}").replace(
        '{apiVersion: data.fluid.io/v1alpha1, kind: TideRuntime, name: clocked}',
        '{apiVersion: autoscaling/v2, kind: HorizontalPodAutoscaler, name: clocked}',
      ),
    );
    await assert.rejects(tide('apply', '-f', path), (error: { stderr: string }) => {
      assert.match(
        error.stderr,
        /hpa\.yaml: .*\/spec\/scaleTargetRef\/kind: this Tide daemon serves no HorizontalPodAutoscalers/,
      );
      return true;
    });
  });
});
