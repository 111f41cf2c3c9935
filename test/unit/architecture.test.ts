import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import { join, relative, dirname, resolve, sep } from 'node:path';

/**
 * The import rule of ARCHITECTURE.md: each component may import only the components listed for it,
 * and only through their index.ts; dependencies point one way.
 */
const ALLOWED: Record<string, readonly string[]> = {
  lib: [],
  api: ['lib'],
  http: ['lib'],
  ufs: ['lib', 'api', 'http'],
  cache: ['lib', 'api', 'http', 'ufs'],
  fuse: ['lib', 'api', 'http', 'ufs', 'cache'],
  kube: ['lib', 'api'],
  csi: ['lib', 'api', 'kube'],
  store: ['lib', 'api', 'kube'],
  platform: ['lib', 'api', 'http', 'ufs', 'cache', 'fuse', 'kube', 'store'],
  controller: ['lib', 'api', 'http', 'ufs', 'cache', 'store', 'platform'],
  embedded: ['lib', 'api', 'http', 'ufs', 'cache', 'fuse', 'store', 'platform', 'controller'],
  webhook: ['lib', 'api', 'kube'],
  operator: ['lib', 'api', 'http', 'ufs', 'cache', 'kube', 'store', 'platform', 'controller', 'webhook'],
  cli: ['lib', 'api', 'http', 'ufs', 'cache', 'fuse', 'kube', 'store', 'platform', 'controller', 'embedded'],
};

const src = join(import.meta.dirname, '..', '..', 'src');

async function sourceFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true });
  const files = await Promise.all(
    entries.map((entry) => {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) return sourceFiles(path);
      return Promise.resolve(entry.name.endsWith('.ts') && !entry.name.endsWith('.test.ts') ? [path] : []);
    }),
  );
  return files.flat();
}

test('components import only what ARCHITECTURE.md allows, through index.ts', async () => {
  const problems: string[] = [];
  for (const file of await sourceFiles(src)) {
    const component = relative(src, file).split(sep)[0] ?? '';
    const allowed = ALLOWED[component];
    if (allowed === undefined) {
      problems.push(`${relative(src, file)}: component "${component}" is not in the import rule`);
      continue;
    }
    const text = await readFile(file, 'utf8');
    for (const match of text.matchAll(/(?:^|\n)\s*(?:import|export)[^'"]*?from\s+['"](\.[^'"]+)['"]/g)) {
      const target = resolve(dirname(file), match[1] ?? '');
      const [targetComponent, ...rest] = relative(src, target).split(sep);
      if (targetComponent === undefined || targetComponent === component) continue;
      if (!allowed.includes(targetComponent)) {
        problems.push(`${relative(src, file)}: ${component} must not import ${targetComponent}`);
      } else if (rest.join('/') !== 'index.ts') {
        problems.push(
          `${relative(src, file)}: imports ${targetComponent}/${rest.join('/')} instead of its index.ts`,
        );
      }
    }
  }
  assert.deepEqual(problems, []);
});
