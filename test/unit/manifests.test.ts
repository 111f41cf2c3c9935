import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { parseManifests, ManifestError } from '../../src/api/index.ts';

const root = join(import.meta.dirname, '..', '..');
const invalidDir = join(root, 'test', 'fixtures', 'invalid');
const examplesDir = join(root, 'examples');

function tide(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  return tideWithInput(undefined, ...args);
}

function tideWithInput(
  input: string | undefined,
  ...args: string[]
): { status: number | null; stdout: string; stderr: string } {
  const result = spawnSync(process.execPath, [join(root, 'src', 'cli', 'main.ts'), ...args], {
    encoding: 'utf8',
    ...(input === undefined ? {} : { input }),
    maxBuffer: 64 * 1024 * 1024,
  });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

test('every example validates with tide apply --dry-run', async () => {
  const files = (await readdir(examplesDir)).filter((file) => file.endsWith('.yaml'));
  assert.ok(files.length >= 3, 'expected the seed examples in examples/');
  for (const file of files) {
    const result = tide('apply', '--dry-run', '-f', join(examplesDir, file));
    assert.equal(result.status, 0, `${file}: ${result.stderr}`);
    assert.match(result.stdout, /valid \(dry run/);
  }
});

test('every invalid fixture is rejected with the message it expects, naming file, document and field', async () => {
  const files = (await readdir(invalidDir)).filter((file) => file.endsWith('.yaml')).sort();
  assert.ok(files.length >= 20, `expected at least 20 invalid fixtures, found ${files.length}`);
  for (const file of files) {
    const path = join(invalidDir, file);
    const text = await readFile(path, 'utf8');
    const expected = /^# expect: (.+)$/m.exec(text)?.[1];
    assert.ok(expected !== undefined, `${file} has no "# expect:" line`);
    const result = tide('apply', '--dry-run', '-f', path);
    assert.equal(result.status, 2, `${file}: exit code`);
    assert.equal(result.stdout, '', `${file}: nothing is printed as applied`);
    const lines = result.stderr.trimEnd().split('\n');
    assert.ok(
      lines.some((line) => line.startsWith(`tide: ${path}: ${expected}`)),
      `${file}: expected a line starting with\n  tide: ${path}: ${expected}\ngot\n  ${lines.join('\n  ')}`,
    );
  }
});

test('an invalid document rejects the whole stream, so nothing is half-applied', () => {
  const text = [
    'apiVersion: data.fluid.io/v1alpha1\nkind: Dataset\nmetadata: {name: good}\nspec: {mounts: [{mountPoint: "http://127.0.0.1/a/"}]}',
    'apiVersion: data.fluid.io/v1alpha1\nkind: Dataset\nmetadata: {name: bad}\nspec: {mounts: [{}]}',
  ].join('\n---\n');
  assert.throws(
    () => parseManifests(text, 'stream.yaml'),
    (error: unknown) =>
      error instanceof ManifestError &&
      error.code === 'ERR_MANIFEST_INVALID' &&
      error.problems.length === 1 &&
      error.problems[0] === 'stream.yaml: document 2 (Dataset "bad"): /spec/mounts/0/mountPoint: is required',
  );
});

test('the namespace defaults to "default" and engine-specific fields of seed runtimes are kept', () => {
  const [runtime] = parseManifests(
    'apiVersion: data.fluid.io/v1alpha1\nkind: AlluxioRuntime\nmetadata: {name: spark}\nspec:\n  replicas: 2\n  properties: {alluxio.user.block.size.bytes.default: 64MB}\n',
    'runtime.yaml',
  );
  assert.ok(runtime !== undefined);
  assert.equal(runtime.object.metadata.namespace, 'default');
  assert.deepEqual((runtime.object['spec'] as Record<string, unknown>)['properties'], {
    'alluxio.user.block.size.bytes.default': '64MB',
  });
});

test('a missing file is one clear line and exit code 2', () => {
  const result = tide('apply', '--dry-run', '-f', '/nonexistent/tide.yaml');
  assert.equal(result.status, 2);
  assert.equal(result.stderr, 'tide: /nonexistent/tide.yaml: cannot read: no such file\n');
});

test('input over 8 MiB is refused before it is parsed, from a file and from standard input', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'tide-manifests-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  // Valid YAML all through, so that only the size can be the reason.
  const big = `# ${'x'.repeat(1000)}\n`.repeat(9 * 1024);
  const path = join(dir, 'big.yaml');
  await writeFile(path, big);
  const fromFile = tide('apply', '--dry-run', '-f', path);
  assert.equal(fromFile.status, 2);
  assert.equal(fromFile.stderr, `tide: ${path}: takes 8.8 MiB; manifests over 8 MiB are refused\n`);
  const fromStdin = tideWithInput(big, 'apply', '--dry-run', '-f', '-');
  assert.equal(fromStdin.status, 2);
  assert.equal(fromStdin.stderr, 'tide: <stdin>: is more than 8 MiB; manifests over 8 MiB are refused\n');
});

test('tide version names Tide and Node 24 or newer', () => {
  const result = tide('version');
  assert.equal(result.status, 0);
  const major = Number(/node v(\d+)/.exec(result.stdout)?.[1]);
  assert.ok(major >= 24, result.stdout);
});
